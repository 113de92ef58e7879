"""PID 1 of one e2b-local sandbox (stdlib only; run by the host's python3 under `unshare`).

It enters the sandbox's cgroups, mounts the sandbox root (overlayfs + /proc, /dev, /sys),
pivots into it and then serves spawn/signal requests on a unix socket inherited from the
server. Each request is one connection: a JSON message plus SCM_RIGHTS fds (stdin, stdout,
stderr). The reply is one JSON line with the pid, then one with the exit code. As PID 1 it
reaps every orphan; when it dies the kernel kills every process of the sandbox.
"""

import contextlib
import ctypes
import json
import os
import selectors
import signal
import socket
import struct
import sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
MNT_DETACH = 2
SYS_PIVOT_ROOT = 155
DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")

libc = ctypes.CDLL(None, use_errno=True)


def _mount(src: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    rc = libc.mount(
        src.encode(),
        target.encode(),
        fstype.encode() if fstype else None,
        flags,
        data.encode() if data else None,
    )
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {fstype or src} on {target}: {os.strerror(err)}")


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def setup_root(cfg: dict) -> None:
    """Mount the sandbox filesystem at cfg['merged'] and pivot into it."""
    for procs in cfg["cgroup_procs"]:
        _write(procs, "0")
    with contextlib.suppress(OSError):  # the OOM killer should pick commands, not init
        _write("/proc/self/oom_score_adj", "-1000")
    _mount("none", "/", None, MS_REC | MS_PRIVATE, None)
    m = cfg["merged"]
    opts = "lowerdir={},upperdir={},workdir={}".format(
        ":".join(cfg["lowers"]), cfg["upper"], cfg["work"]
    )
    _mount("overlay", m, "overlay", 0, opts)
    _mount("proc", m + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    if cfg["own_net"]:
        _mount("sysfs", m + "/sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    dev = m + "/dev"
    _mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=64k")
    for name in DEV_NODES:
        open(f"{dev}/{name}", "w").close()
        _mount(f"/dev/{name}", f"{dev}/{name}", None, MS_BIND, None)
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ):
        os.symlink(target, f"{dev}/{name}")
    os.mkdir(dev + "/pts")
    _mount("devpts", dev + "/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666")
    os.mkdir(dev + "/shm")
    _mount("tmpfs", dev + "/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    socket.sethostname(cfg["hostname"])
    if cfg["own_net"]:
        _loopback_up()
    os.chdir(m)
    if libc.syscall(SYS_PIVOT_ROOT, b".", b".") != 0:
        raise OSError(ctypes.get_errno(), "pivot_root")
    if libc.umount2(b".", MNT_DETACH) != 0:
        raise OSError(ctypes.get_errno(), "umount old root")
    os.chdir("/")


def _loopback_up() -> None:
    """Bring `lo` up in the sandbox's own network namespace (SIOCSIFFLAGS)."""
    import fcntl

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        ifreq = struct.pack("16sH14s", b"lo", 0x1 | 0x8 | 0x40, b"\0" * 14)  # UP|LOOPBACK|RUNNING
        fcntl.ioctl(s.fileno(), 0x8914, ifreq)
    finally:
        s.close()


def _child(req: dict, fds: list[int]) -> None:
    """In the forked child: wire fds, drop to the user, exec. Never returns."""
    try:
        os.setsid()
        for i, fd in enumerate(fds[:3]):
            os.dup2(fd, i, inheritable=True)
        os.closerange(3, 65536)
        for sig in (signal.SIGPIPE, signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        with contextlib.suppress(OSError):
            _write("/proc/self/oom_score_adj", "0")
        os.setgroups(req.get("groups", []))
        os.setgid(req["gid"])
        os.setuid(req["uid"])
        try:
            os.chdir(req["cwd"])
        except OSError as e:
            os.write(2, f"cwd '{req['cwd']}': {e.strerror}\n".encode())
            os._exit(1)
        os.execve(req["argv"][0], req["argv"], req["env"])
    except OSError as e:
        os.write(2, f"{req['argv'][0]}: {e.strerror}\n".encode())
    finally:
        os._exit(127)


def serve(listener: socket.socket) -> None:
    """Accept spawn/signal requests and report exits until killed."""
    sel = selectors.DefaultSelector()
    rpipe, wpipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wpipe)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    listener.setblocking(False)
    sel.register(listener, selectors.EVENT_READ, "accept")
    sel.register(rpipe, selectors.EVENT_READ, "sigchld")
    waiting: dict[int, socket.socket] = {}
    while True:
        for key, _ in sel.select():
            if key.data == "accept":
                try:
                    conn, _addr = listener.accept()
                except BlockingIOError:
                    continue
                conn.setblocking(True)
                try:
                    msg, fds, _flags, _addr = socket.recv_fds(conn, 1 << 20, 8)
                    req = json.loads(msg)
                    op = req["op"]
                    if op == "spawn":
                        pid = os.fork()
                        if pid == 0:
                            _child(req, fds)
                        waiting[pid] = conn
                        conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
                    elif op == "signal":
                        try:
                            os.kill(req["pid"], req["sig"])
                            conn.sendall(b'{"ok": true}\n')
                        except OSError as e:
                            conn.sendall(json.dumps({"error": e.strerror}).encode() + b"\n")
                        conn.close()
                    else:
                        conn.sendall(b'{"ok": true}\n')
                        conn.close()
                except (OSError, ValueError, KeyError):
                    conn.close()
                finally:
                    for fd in fds:
                        os.close(fd)
            else:
                try:
                    while os.read(rpipe, 512):
                        pass
                except BlockingIOError:
                    pass
                while True:
                    try:
                        pid, status = os.waitpid(-1, os.WNOHANG)
                    except ChildProcessError:
                        break
                    if pid == 0:
                        break
                    conn = waiting.pop(pid, None)
                    if conn is not None:
                        code = os.waitstatus_to_exitcode(status)
                        with contextlib.suppress(OSError):
                            conn.sendall(json.dumps({"exit": code}).encode() + b"\n")
                        conn.close()


def main() -> None:
    cfg = json.loads(sys.argv[1])
    listener = socket.socket(fileno=cfg["ctl_fd"])
    try:
        setup_root(cfg)
    except OSError as e:
        import traceback

        os.write(2, f"sandbox init failed: {e}\n{traceback.format_exc()}".encode())
        os._exit(1)
    os.write(1, b"ready\n")
    null = os.open("/dev/null", os.O_RDWR)
    for i in (0, 1, 2):
        os.dup2(null, i)
    os.close(null)
    serve(listener)


if __name__ == "__main__":
    main()
