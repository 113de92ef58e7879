"""Host-side targets and probes for the escape tests.

Everything here lives on this machine only: listeners on the host's own addresses, and
network namespaces (veth + host route) that stand in for "the metadata service" and "the
internet", so no test ever sends a packet off the host. Each target cleans up after itself.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def rand() -> str:
    return secrets.token_hex(4)


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


_NETNS_SERVER = r"""
import socket, sys
log = sys.argv[1]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 80))
s.listen(64)
while True:
    c, peer = s.accept()
    with open(log, "a") as f:
        f.write("%s -> %s\n" % (peer[0], c.getsockname()[0]))
    try:
        c.sendall(b"e2bt-netns-ok\n")
    finally:
        c.close()
"""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


class NetnsTarget:
    """A network namespace of ours reached from the host by a veth pair and /32 host routes.

    Addresses added with `add_address` are owned by the namespace, where a TCP listener on
    port 80 logs every connection; the host routes them into the veth, so whatever on this
    machine sends to them (the host, or a sandbox whose traffic the host forwards) ends up
    here and nowhere else.
    """

    def __init__(self, workdir: Path) -> None:
        r = rand()
        self.ns = f"e2bt-{r}"
        # not "e2*": e2b-local names its own veths so, and keeps sandboxes away from them
        self.veth_h, self.veth_n = f"tnet{r}h", f"tnet{r}n"
        b = secrets.randbelow(256)
        c = secrets.randbelow(64) * 4
        self.host_ip, self.ns_ip = f"198.18.{b}.{c + 1}", f"198.18.{b}.{c + 2}"
        self.log = workdir / f"{self.ns}.log"
        self.routes: list[str] = []
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> NetnsTarget:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        self.log.write_text("")
        _ip("netns", "add", self.ns)
        _ip("link", "add", self.veth_h, "type", "veth", "peer", "name", self.veth_n)
        _ip("link", "set", self.veth_n, "netns", self.ns)
        _ip("addr", "add", f"{self.host_ip}/30", "dev", self.veth_h)
        _ip("link", "set", self.veth_h, "up")
        _ip("-n", self.ns, "addr", "add", f"{self.ns_ip}/30", "dev", self.veth_n)
        _ip("-n", self.ns, "link", "set", self.veth_n, "up")
        _ip("-n", self.ns, "link", "set", "lo", "up")
        _ip("-n", self.ns, "route", "add", "default", "via", self.host_ip)
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, sys.executable, "-c", _NETNS_SERVER, str(self.log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection((self.ns_ip, 80), timeout=1) as s:
                    s.recv(100)
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    raise RuntimeError(f"netns listener did not start: {err}") from None
                time.sleep(0.05)

    def add_address(self, addr: str) -> None:
        _ip("-n", self.ns, "addr", "add", f"{addr}/32", "dev", self.veth_n)
        _ip("route", "replace", f"{addr}/32", "via", self.ns_ip, "dev", self.veth_h)
        self.routes.append(addr)

    def del_address(self, addr: str) -> None:
        if addr in self.routes:
            _ip("route", "del", f"{addr}/32", "via", self.ns_ip, "dev", self.veth_h, check=False)
            self.routes.remove(addr)
        _ip("-n", self.ns, "addr", "del", f"{addr}/32", "dev", self.veth_n, check=False)

    def contacts(self, addr: str) -> list[str]:
        """Connections the listener accepted on `addr`."""
        return [ln for ln in self.log.read_text().splitlines() if ln.endswith(f"-> {addr}")]

    def close(self) -> None:
        for addr in list(self.routes):
            self.del_address(addr)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        if self.proc is not None and self.proc.stderr:
            self.proc.stderr.close()
        _ip("link", "del", self.veth_h, check=False)
        _ip("netns", "del", self.ns, check=False)
        self.log.unlink(missing_ok=True)


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
