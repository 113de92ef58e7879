"""A test host of our own: a network namespace reached from this machine through a veth pair.

Sandboxes with internet on reach it through e2b-local's NAT like any internet address, while
no packet leaves this machine. Used by the escape tests (metadata and "internet" stand-ins)
and by integration tests whose sandboxes must report to the test (the host itself is out of
a sandbox's reach).
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path


def rand() -> str:
    return secrets.token_hex(4)


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
