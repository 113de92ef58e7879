"""PID 1 of one e2b-local sandbox (stdlib only; crun starts it inside the sandbox).

crun has set up the namespaces, mounts, cgroups, capabilities and seccomp filter; this
serves spawn/signal requests on a unix socket the server passes as fd 3, and ends (and
with it the whole sandbox) when fd 4, the server's lifeline, reaches EOF: the server died.
Each request is one connection: a JSON message plus SCM_RIGHTS fds (stdin, stdout,
stderr). The reply is one JSON line with the pid, then one with the exit code. A spawn
with "pty": [rows, cols] gets a terminal allocated here, on the sandbox's own devpts,
instead of fds: its master comes back with the pid line (SCM_RIGHTS). As PID 1 it reaps
every orphan; when it dies the kernel kills every process of the sandbox.
"""

import contextlib
import fcntl
import json
import os
import selectors
import signal
import socket
import struct
import termios

LIFELINE = 4


def _child(req: dict, fds: list[int]) -> None:
    """In the forked child: wire fds, drop to the user, exec. Never returns."""
    try:
        os.setsid()
        for i, fd in enumerate(fds[:3]):
            os.dup2(fd, i, inheritable=True)
        if "pty" in req:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        os.closerange(3, 65536)
        for sig in (signal.SIGPIPE, signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as f:
            f.write("0")
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


def _spawn_pty(req: dict, conn: socket.socket) -> int:
    """Fork the request's process on a new terminal; send its pid line with the master fd."""
    master, slave = os.openpty()
    try:
        rows, cols = req["pty"]
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        with contextlib.suppress(OSError):
            os.fchown(slave, req["uid"], req["gid"])
        pid = os.fork()
        if pid == 0:
            os.close(master)
            _child(req, [slave, slave, slave])
        socket.send_fds(conn, [json.dumps({"pid": pid}).encode() + b"\n"], [master])
        return pid
    finally:
        os.close(master)
        os.close(slave)


def _read_request(conn: socket.socket) -> tuple[dict, list[int]]:
    """One request: a JSON line, its fds arriving with its first bytes. A stream read stops
    after the chunk carrying fds (about 36 KiB), so a large request (big envs) takes several."""
    data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 16, 8)
    chunks = [data]
    try:
        while data and not data.endswith(b"\n"):
            data = conn.recv(1 << 16)
            chunks.append(data)
        if not data:
            raise ValueError("request cut short")
        return json.loads(b"".join(chunks)), fds
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def serve(listener: socket.socket) -> None:
    """Accept spawn/signal requests and report exits until killed."""
    sel = selectors.DefaultSelector()
    rpipe, wpipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wpipe)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    listener.setblocking(False)
    sel.register(listener, selectors.EVENT_READ, "accept")
    sel.register(rpipe, selectors.EVENT_READ, "sigchld")
    sel.register(LIFELINE, selectors.EVENT_READ, "lifeline")
    waiting: dict[int, socket.socket] = {}
    while True:
        for key, _ in sel.select():
            if key.data == "lifeline":
                if not os.read(LIFELINE, 1):
                    os._exit(0)  # the server is gone: PID 1 exits, the kernel ends the rest
                continue
            if key.data == "accept":
                try:
                    conn, _addr = listener.accept()
                except BlockingIOError:
                    continue
                conn.setblocking(True)
                fds: list[int] = []
                try:
                    req, fds = _read_request(conn)
                    op = req["op"]
                    if op == "spawn" and "pty" in req:
                        pid = _spawn_pty(req, conn)
                        waiting[pid] = conn
                    elif op == "spawn":
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
                except (OSError, ValueError, KeyError) as e:
                    with contextlib.suppress(OSError):  # say why, not just hang up
                        conn.sendall(json.dumps({"error": str(e)}).encode() + b"\n")
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
    listener = socket.socket(fileno=3)
    null = os.open("/dev/null", os.O_RDWR)
    for i in (0, 1, 2):
        os.dup2(null, i)
    os.close(null)
    serve(listener)


if __name__ == "__main__":
    main()
