"""Start logged background processes and stop them by PID, also from another process."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path


class StartupError(RuntimeError):
    """A process did not come up; the message carries the tail of its log."""


def spawn(cmd: Sequence[str], log_path: Path, env: dict[str, str] | None = None) -> int:
    """Start ``cmd`` in its own session with output appended to ``log_path`` (mode 0600, as
    logs may hold what the process saw); return its PID."""
    log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)  # a log left by an older run may be wider
    with os.fdopen(fd, "ab") as log:
        proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    # Popen returns once the exec is past its point of no return, but before the kernel has
    # set up the new argv: /proc/<pid>/cmdline reads empty for a moment (often, under load),
    # and alive(pid, name) would call the new process gone. Return once its argv shows.
    cmdline = Path(f"/proc/{proc.pid}/cmdline")
    while proc.poll() is None:
        with contextlib.suppress(OSError):
            if cmdline.read_bytes():
                break
        time.sleep(0.001)
    return proc.pid


def alive(pid: int, name: str | None = None) -> bool:
    """True if ``pid`` runs (and is the program ``name``: the file name of its first or second
    argument contains it, as ``etcd`` or ``python3 .../kopf``; guards against PID reuse)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    _reap(pid)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:2]
    except (OSError, IndexError):
        return False
    return name is None or any(name.encode() in os.path.basename(a) for a in argv)


def stop(pid: int, name: str | None = None, timeout: float = 10.0) -> None:
    """SIGTERM ``pid``, then SIGKILL it if it is still there after ``timeout`` seconds.

    Signals go through a pidfd, never the bare PID: on a busy host (pid_max 32768) a PID is
    reused within seconds of its process ending, and a SIGKILL sent by number after the wait
    would hit whatever process got it next."""
    if not alive(pid, name):
        return
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if not alive(pid, name):  # the pidfd pins the PID: this is still the process we meant
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                signal.pidfd_send_signal(fd, sig)
            except ProcessLookupError:
                return
            if select.select([fd], [], [], wait)[0]:  # readable once it has exited
                return
    finally:
        os.close(fd)
        _reap(pid)


def wait_until(
    check: Callable[[], bool], *, pid: int, name: str, log_path: Path, timeout: float
) -> None:
    """Poll ``check`` until it is true; fail early, with the log tail, if ``pid`` dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if not alive(pid):
            raise StartupError(f"{name} exited during start-up; last log lines:\n{tail(log_path)}")
        time.sleep(0.1)
    raise StartupError(
        f"{name} was not ready after {timeout:.0f}s; last log lines:\n{tail(log_path)}"
    )


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def ensure_port_free(port: int, host: str = "127.0.0.1") -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise StartupError(
                f"port {port} on {host} is taken ({exc.strerror}); stop what uses it "
                f"(`ss -ltnp | grep :{port}`) or choose another port (0 picks a free one)"
            ) from exc


def _reap(pid: int) -> None:
    """Collect ``pid`` if it is our exited child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
