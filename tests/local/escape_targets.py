"""Host-side targets and probes for the escape tests.

Everything here lives on this machine only: listeners on the host's own addresses, and
network namespaces (veth + host route) that stand in for "the metadata service" and "the
internet", so no test ever sends a packet off the host. Each target cleans up after itself.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def host_addresses() -> list[str]:
    """This machine's own non-loopback addresses (IPv4 and global IPv6), the host ends of
    sandbox and test veths included: a sandbox must reach none of them."""
    out = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    addrs = []
    for line in out.splitlines():
        f = line.split()
        if f[1] == "lo" or f[2] not in ("inet", "inet6") or "scope link" in line:
            continue
        addrs.append(f[3].split("/")[0])
    return addrs


class HostListeners:
    """A TCP and a UDP socket on every host address (IPv4 and IPv6), recording each contact."""

    def __init__(self) -> None:
        self.contacts: list[str] = []
        self._stop = threading.Event()
        self.tcp = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        self.udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        for s in (self.tcp, self.udp):
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            s.bind(("::", 0))
            s.settimeout(0.2)
        self.tcp.listen(64)
        self.tcp_port: int = self.tcp.getsockname()[1]
        self.udp_port: int = self.udp.getsockname()[1]
        self._threads = [
            threading.Thread(target=self._accept, daemon=True),
            threading.Thread(target=self._recv, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self.tcp.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(0.5)
                data = b""
                with contextlib.suppress(OSError):
                    data = conn.recv(200)
                    conn.sendall(b"e2bt-host-listener\n")
                self.contacts.append(f"tcp from {peer[0]}: {data!r}")

    def _recv(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.udp.recvfrom(2000)
            except TimeoutError:
                continue
            except OSError:
                return
            self.contacts.append(f"udp from {peer[0]}: {data!r}")

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(2)
        self.tcp.close()
        self.udp.close()


def host_fetch(addr: str, port: int = 80) -> str:
    """Connect from the host and return what the listener said ('' if unreachable)."""
    try:
        with socket.create_connection((addr, port), timeout=2) as s:
            return s.recv(100).decode()
    except OSError:
        return ""


# -- host processes and cgroups of sandboxes ---------------------------------------------------


def host_pid_by_argv0(argv0: str, timeout: float = 10) -> int:
    """The host pid of the process whose argv[0] is `argv0` (a marker set with `exec -a`)."""
    want = argv0.encode() + b"\0"
    deadline = time.monotonic() + timeout
    while True:
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if (d / "cmdline").read_bytes().startswith(want):
                    return int(d.name)
        if time.monotonic() > deadline:
            raise AssertionError(f"no host process with argv[0] {argv0!r}")
        time.sleep(0.05)


def host_cgroups(pid: int) -> dict[str, str]:
    """controller -> cgroup path of a host pid, from the host's view."""
    out = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _hid, ctls, path = line.split(":", 2)
        for c in ctls.split(","):
            out[c or "unified"] = path
    return out


def host_uid(pid: int) -> int:
    """The effective host uid of a host pid."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[2])
    raise AssertionError(f"no Uid line for pid {pid}")


def effective_memory_limit(path: str) -> int:
    """The smallest memory.limit_in_bytes from the cgroup `path` up to (not incl.) the root."""
    d = CGROUP_ROOT / "memory" / path.lstrip("/")
    limits = []
    while d != CGROUP_ROOT / "memory":
        with contextlib.suppress(OSError, ValueError):
            limits.append(int((d / "memory.limit_in_bytes").read_text()))
        d = d.parent
    return min(limits) if limits else 1 << 62


def thaw(freezer_path: str) -> None:
    f = CGROUP_ROOT / "freezer" / freezer_path.lstrip("/") / "freezer.state"
    with contextlib.suppress(OSError):
        f.write_text("THAWED")


# -- host files ---------------------------------------------------------------------------------


class HostPaths:
    """Paths that must never appear on the host; any that does is reported and removed."""

    def __init__(self, *paths: Path) -> None:
        self.paths = list(paths)

    def add(self, p: Path) -> Path:
        self.paths.append(p)
        return p

    def present(self) -> list[str]:
        return [str(p) for p in self.paths if os.path.lexists(p)]

    def remove(self) -> None:
        for p in self.paths:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    p.unlink()


def stat_sig(path: str) -> tuple[int, int, int, int, int]:
    s = os.stat(path)
    return (s.st_mode, s.st_uid, s.st_gid, s.st_mtime_ns, s.st_atime_ns)


def restore_stat(path: str, sig: tuple[int, int, int, int, int]) -> None:
    mode, uid, gid, mtime, atime = sig
    with contextlib.suppress(OSError):
        os.chown(path, uid, gid)
        os.chmod(path, mode & 0o7777)
        os.utime(path, ns=(atime, mtime))
