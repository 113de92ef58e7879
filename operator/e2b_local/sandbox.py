"""One running sandbox: its namespace init, layers, cgroups and the processes started in it."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import errno
import fcntl
import json
import logging
import os
import select
import shutil
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from . import oci
from .idmap import ID_BASE
from .isolation import Cgroups, Host
from .netns import Lease, NetworkError

log = logging.getLogger("e2b_local.sandbox")

INIT_SOURCE = Path(__file__).with_name("sandbox_init.py").read_text()
CRUN = shutil.which("crun") or "/usr/bin/crun"
DEFAULT_PATH = oci.DEFAULT_PATH
_MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


class Closable(Protocol):
    def close(self) -> None: ...


class SandboxError(Exception):
    """The sandbox could not be started or is gone."""


@dataclass
class User:
    name: str
    uid: int
    gid: int
    home: str


@dataclass
class Proc:
    """A process started through envd, with its output fan-out to subscribers."""

    pid: int
    cmd: str
    args: list[str]
    envs: dict[str, str]
    cwd: str
    tag: str | None
    stdin_fd: int | None  # for a PTY: its master (input, resize)
    pty: bool = False
    subscribers: list[asyncio.Queue] = field(default_factory=list)
    exit_code: int | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def publish(self, event: tuple[str, object]) -> None:
        for q in self.subscribers:
            q.put_nowait(event)


class SandboxRuntime:
    """The isolated process tree of one sandbox (a crun container) and the host paths behind it."""

    def __init__(
        self,
        sandbox_id: str,
        host: Host,
        lowers: list[str],
        *,
        internet: bool,
        memory_mb: int,
        cpu_count: int,
        upper: Path | None = None,
    ) -> None:
        self.id = sandbox_id
        self.host = host
        self.dir = host.run_dir / "sbx" / sandbox_id
        self.lowers = lowers
        self.internet = internet
        self.memory_mb = memory_mb
        self.cpu_count = cpu_count
        self.upper = upper or self.dir / "upper"
        self.cgroups = Cgroups(host, sandbox_id)
        self.ctl_path = str(self.dir / "ctl.sock")
        self.pidfd: int | None = None  # the init itself: signals never reach a reused pid
        self.netns_fd: int | None = None
        self.root_fd: int | None = None
        self.lease: Lease | None = None
        self.procs: dict[int, Proc] = {}
        self.watchers: dict[str, Closable] = {}  # directory watchers, closed with the sandbox
        self._users: dict[str, User] = {}
        self._created = False

    async def start(self) -> None:
        """Mount the root, start the crun container and, with internet, its network.

        No wait for the init to come up: the control socket listens before crun starts, so
        the first request waits in its backlog, and fails if the init dies instead.
        """
        try:
            self._mount_root()
            await self._run_container()
            if self.internet:
                assert self.netns_fd is not None
                self.lease = await self.host.network.attach(self.netns_fd)
        except (OSError, NetworkError) as e:
            await self.destroy()
            raise SandboxError(f"sandbox could not start: {e}") from e
        except BaseException:
            await self.destroy()
            raise

    def _mount_root(self) -> None:
        merged, work = self.dir / "root", self.dir / "work"
        for d in (self.upper, work, merged):
            d.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o711)
        # The upper dir's owner is the owner of the sandbox's `/`: sandbox root.
        os.chown(self.upper, ID_BASE, ID_BASE)
        self.upper.chmod(0o755)
        opts = "lowerdir={},upperdir={},workdir={}".format(":".join(self.lowers), self.upper, work)
        mount_overlay(str(merged), opts)

    async def _run_container(self) -> None:
        bundle = self.dir / "bundle"
        bundle.mkdir(exist_ok=True)
        spec = oci.SandboxSpec(
            rootfs=str(self.dir / "root"),
            hostname="e2b-" + self.id[:12],
            args=["/usr/bin/python3", "-I", "-S", "-"],  # the init's source comes on stdin
            cgroups_path=self.host.cgroups_path(self.id),
            memory_mb=self.memory_mb,
            cpu_count=self.cpu_count,
        )
        (bundle / "config.json").write_text(json.dumps(oci.config(spec, self.host.seccomp_bpf)))
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.ctl_path)
        listener.listen(128)
        pid_file, err_file = self.dir / "init.pid", self.dir / "crun.out"
        stdin_file = self.dir / "crun.in"
        stdin_file.write_text(INIT_SOURCE)
        stdin_file.chmod(0o600)
        argv = [
            CRUN,
            *self.host.crun_args,
            "run",
            "--detach",
            "--bundle",
            str(bundle),
            "--pid-file",
            str(pid_file),
            "--preserve-fds",
            "2",
            self.id,
        ]
        # The init's fd 3 is the control socket, fd 4 the server's lifeline (EOF when the
        # server dies, so its sandboxes die with it). Both are first moved above 4 so the
        # dup2s cannot clobber each other; dup2 clears CLOEXEC on the targets.
        ctl = fcntl.fcntl(listener.fileno(), fcntl.F_DUPFD_CLOEXEC, 10)
        life = fcntl.fcntl(self.host.lifeline, fcntl.F_DUPFD_CLOEXEC, 10)
        try:
            self._created = True
            pid = os.posix_spawn(
                CRUN,
                argv,
                {"PATH": oci.DEFAULT_PATH},
                # Never the host's /dev/null: crun hands its stdio to the sandbox's root
                # (chown), so they are the sandbox's own files.
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, str(stdin_file), os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 1, str(err_file), os.O_WRONLY | os.O_CREAT, 0o600),
                    (os.POSIX_SPAWN_DUP2, 1, 2),
                    (os.POSIX_SPAWN_DUP2, ctl, 3),
                    (os.POSIX_SPAWN_DUP2, life, 4),
                ],
                setsid=True,
            )
        finally:
            os.close(ctl)
            os.close(life)
            listener.close()
        if await wait_pid(pid) != 0:
            err = err_file.read_text(errors="replace").strip()
            raise SandboxError(f"sandbox init failed: {err or 'crun failed without a message'}")
        self._hold_init(int(pid_file.read_text()))
        if self.host.seccomp_bpf is None:
            compiled = self.host.crun_root / self.id / "seccomp.bpf"
            self.host.seccomp_bpf = base64.b64encode(compiled.read_bytes()).decode()

    def _hold_init(self, pid: int) -> None:
        """Open the init's pidfd, root and network namespace while it surely is that pid's
        process: opened first, then checked still running through the pidfd (the init is not
        our child, so once it exits and is reaped its pid can name any host process)."""
        self.pidfd = os.pidfd_open(pid)
        self.root_fd = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY)
        self.netns_fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        with contextlib.suppress(OSError):  # the OOM killer picks commands, not the init
            Path(f"/proc/{pid}/oom_score_adj").write_text("-1000")
        if not self.alive:
            raise SandboxError("sandbox init exited at start")

    @property
    def alive(self) -> bool:
        """The namespace init runs (one that exited, reaped or not, does not count)."""
        if self.pidfd is None:
            return False
        poller = select.poll()
        poller.register(self.pidfd, select.POLLIN)
        return not poller.poll(0)  # a pidfd turns readable when its process exits

    async def _request(
        self, req: dict, fds: list[int], *, reply_fd: bool = False
    ) -> tuple[LineSocket, dict]:
        """Send one request; its first reply line (with the fd it carries if `reply_fd`)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            await loop.sock_connect(sock, self.ctl_path)
            await _send_fds(sock, json.dumps(req).encode() + b"\n", fds)
            lines = LineSocket(sock)
            if reply_fd:
                lines.fd = await lines.recv_fd()
            reply = await lines.readline()
        except OSError as e:
            sock.close()
            raise SandboxError(f"sandbox {self.id} is not running: {e}") from e
        return lines, reply

    def user(self, name: str | None) -> User:
        """Resolve a user from the sandbox's own /etc/passwd (default `user`)."""
        name = name or "user"
        if name not in self._users:
            from .sbxfs import read_passwd

            for u in read_passwd(self):
                self._users[u.name] = u
        if name not in self._users:
            raise KeyError(name)
        return self._users[name]

    async def spawn(
        self,
        cmd: str,
        args: list[str],
        envs: dict[str, str],
        cwd: str | None,
        user: User,
        *,
        tag: str | None = None,
        stdin: bool = False,
        stdin_fd: int | None = None,
        pty: tuple[int, int] | None = None,
    ) -> Proc:
        """Start a process inside the sandbox; output is published to the Proc's subscribers.

        With `pty` (rows, cols) it runs on a terminal the init allocates inside the sandbox;
        its output is published as "pty" and its master is the Proc's stdin_fd.
        """
        if pty is not None:
            return await self._spawn_pty(cmd, args, envs, cwd, user, tag, pty)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        keep_stdin: int | None = None
        if stdin_fd is not None:
            in_r = stdin_fd
        elif stdin:
            in_r, keep_stdin = os.pipe2(os.O_CLOEXEC)
        else:
            in_r = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        cwd = cwd or user.home
        req = _spawn_request(cmd, args, envs, cwd, user)
        try:
            sock, reply = await self._request(req, [in_r, out_w, err_w])
            if "pid" not in reply:
                sock.close()
                raise SandboxError(
                    f"sandbox {self.id} could not start '{cmd}': {reply.get('error')}"
                )
        except BaseException:
            for fd in (out_r, err_r, keep_stdin):
                if fd is not None:
                    os.close(fd)
            raise
        finally:
            for fd in (in_r, out_w, err_w):
                if fd != stdin_fd:
                    os.close(fd)
        proc = Proc(reply["pid"], cmd, args, envs, cwd, tag, keep_stdin)
        self.procs[proc.pid] = proc
        asyncio.get_running_loop().create_task(self._pump(proc, sock, out_r, err_r))
        return proc

    async def _spawn_pty(
        self,
        cmd: str,
        args: list[str],
        envs: dict[str, str],
        cwd: str | None,
        user: User,
        tag: str | None,
        size: tuple[int, int],
    ) -> Proc:
        cwd = cwd or user.home
        req = {**_spawn_request(cmd, args, envs, cwd, user), "pty": list(size)}
        sock, reply = await self._request(req, [], reply_fd=True)
        master = sock.fd
        if master is None or "pid" not in reply:
            sock.close()
            if master is not None:
                os.close(master)
            raise SandboxError(f"sandbox {self.id}: no terminal for '{cmd}': {reply.get('error')}")
        proc = Proc(reply["pid"], cmd, args, envs, cwd, tag, master, pty=True)
        self.procs[proc.pid] = proc
        out = os.dup(master)
        asyncio.get_running_loop().create_task(self._pump(proc, sock, out, None))
        return proc

    async def _pump(self, proc: Proc, sock: LineSocket, out_r: int, err_r: int | None) -> None:
        loop = asyncio.get_running_loop()
        out_kind = "pty" if proc.pty else "stdout"
        readers = [loop.create_task(_drain(out_r, lambda b: proc.publish((out_kind, b))))]
        if err_r is not None:
            readers.append(loop.create_task(_drain(err_r, lambda b: proc.publish(("stderr", b)))))
        try:
            reply = await sock.readline()
            code = int(reply.get("exit", -1))
        except (OSError, ValueError):
            code = -9
        finally:
            sock.close()
        # Background children may keep the pipes open; give the output a moment, then stop.
        _done, pending = await asyncio.wait(readers, timeout=0.2)
        for t in pending:
            t.cancel()
        proc.exit_code = code
        if proc.stdin_fd is not None:
            with contextlib.suppress(OSError):
                os.close(proc.stdin_fd)
            proc.stdin_fd = None
        proc.publish(("end", code))
        proc.done.set()
        self.procs.pop(proc.pid, None)

    async def signal(self, pid: int, sig: int) -> bool:
        sock, reply = await self._request({"op": "signal", "pid": pid, "sig": sig}, [])
        sock.close()
        return "error" not in reply

    async def run(
        self,
        script: str,
        user: User,
        envs: dict[str, str],
        cwd: str | None,
        on_output: Callable[[str], None] | None = None,
        stdin_fd: int | None = None,
        timeout: float | None = None,
    ) -> int:
        """Run `bash -l -c script` to completion, streaming merged output lines to on_output."""
        q: asyncio.Queue = asyncio.Queue()
        proc = await self.spawn(
            "/bin/bash", ["-l", "-c", script], envs, cwd, user, stdin_fd=stdin_fd
        )
        proc.subscribers.append(q)
        if proc.done.is_set():
            return proc.exit_code or 0
        buf = b""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                kind, data = await asyncio.wait_for(q.get(), wait)
            except TimeoutError:
                await self.signal(proc.pid, signal.SIGKILL)
                continue
            if kind == "end":
                if buf and on_output:
                    on_output(buf.decode(errors="replace"))
                return int(data)  # type: ignore[call-overload]
            buf += data  # type: ignore[operator]
            *lines, buf = buf.split(b"\n")
            for ln in lines:
                if on_output:
                    on_output(ln.decode(errors="replace"))

    def freeze(self, frozen: bool) -> bool:
        return self.cgroups.freeze(frozen)

    async def destroy(self) -> None:
        """Kill every process of the sandbox; remove its container, cgroups, mounts and layer."""
        self.abandon()
        if self._created:
            await self._crun("delete", "--force", self.id)
        if self.lease is not None:
            await self.host.network.release(self.lease)
            self.lease = None
        for fd in (self.root_fd, self.netns_fd, self.pidfd):
            if fd is not None:
                os.close(fd)
        self.root_fd = self.netns_fd = self.pidfd = None
        await asyncio.get_running_loop().run_in_executor(None, self._remove_dir)

    def abandon(self) -> None:
        """Kill the init (its pid namespace, every process of the sandbox, ends with it) and
        end whatever waits on the sandbox; its container state, cgroups, veth and layer are
        left to `destroy` or, at server shutdown, to the host's bulk cleanup."""
        self.cgroups.freeze(False)
        if self.pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        for w in self.watchers.values():
            w.close()
        self.watchers.clear()
        for proc in list(self.procs.values()):
            if not proc.done.is_set():
                proc.exit_code = -9
                proc.publish(("end", -9))
                proc.done.set()
        self.procs.clear()

    def _remove_dir(self) -> None:
        umount(str(self.dir / "root"))
        shutil.rmtree(self.dir, ignore_errors=True)

    async def _crun(self, *args: str) -> None:
        proc = await asyncio.create_subprocess_exec(
            CRUN,
            *self.host.crun_args,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await proc.communicate()
        if proc.returncode != 0:
            log.warning("crun %s %s: %s", args[0], self.id, err.decode(errors="replace").strip())


async def wait_pid(pid: int) -> int:
    """Wait for a child without blocking the loop or a thread (pidfd); its exit code."""
    loop = asyncio.get_running_loop()
    fd = os.pidfd_open(pid)
    done = loop.create_future()
    loop.add_reader(fd, lambda: done.done() or done.set_result(None))
    try:
        await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def mount_overlay(target: str, options: str) -> None:
    if _libc.mount(b"overlay", target.encode(), b"overlay", 0, options.encode()) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount overlay on {target}: {os.strerror(err)}")


def umount(target: str) -> None:
    """Detach a mount if it is there."""
    _libc.umount2(target.encode(), _MNT_DETACH)


def _spawn_request(
    cmd: str, args: list[str], envs: dict[str, str], cwd: str, user: User
) -> dict[str, object]:
    env = {"PATH": DEFAULT_PATH, "HOME": user.home, "USER": user.name, "LOGNAME": user.name}
    env.update(envs)
    return {
        "op": "spawn",
        "argv": [cmd, *args],
        "env": env,
        "cwd": cwd,
        "uid": user.uid,
        "gid": user.gid,
        "groups": [user.gid],
    }


async def _send_fds(sock: socket.socket, payload: bytes, fds: list[int]) -> None:
    """Send a request line, its fds with its first bytes, without blocking the event loop
    (a request can outsize the socket buffer while the init is busy)."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            sent = socket.send_fds(sock, [payload], fds)
            break
        except BlockingIOError:
            await _ready(sock, loop.add_writer, loop.remove_writer)
    if sent < len(payload):  # send(b"") is EPIPE once the init has answered and hung up
        await loop.sock_sendall(sock, payload[sent:])


async def _ready(
    sock: socket.socket,
    add: Callable[..., object],
    remove: Callable[[int], object],
) -> None:
    """Wait until `sock` is ready (loop.add_reader/add_writer and their remove)."""
    ready = asyncio.get_running_loop().create_future()
    add(sock.fileno(), lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        remove(sock.fileno())


class LineSocket:
    """JSON-lines reader over a non-blocking unix socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.fd: int | None = None

    async def recv_fd(self) -> int | None:
        """Read what is there with the fd sent along (SCM_RIGHTS), keeping the bytes."""
        loop = asyncio.get_running_loop()
        await _ready(self.sock, loop.add_reader, loop.remove_reader)
        data, fds, _flags, _addr = socket.recv_fds(self.sock, 4096, 1)
        if not data:
            raise OSError("control connection closed")
        self.buf += data
        return fds[0] if fds else None

    async def readline(self) -> dict:
        loop = asyncio.get_running_loop()
        while b"\n" not in self.buf:
            chunk = await loop.sock_recv(self.sock, 4096)
            if not chunk:
                raise OSError("control connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def close(self) -> None:
        self.sock.close()


async def _drain(fd: int, sink: Callable[[bytes], None]) -> None:
    """Read a pipe until EOF without blocking the event loop."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    ready = asyncio.Event()
    loop.add_reader(fd, ready.set)
    try:
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                ready.clear()
                await ready.wait()
                continue
            except OSError as e:
                if e.errno == errno.EIO:  # a terminal whose last process has exited
                    return
                raise
            if not data:
                return
            sink(data)
    finally:
        loop.remove_reader(fd)
        os.close(fd)
