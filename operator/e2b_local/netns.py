"""Sandbox networking: every sandbox has its own network namespace.

Internet off: the namespace crun creates, with only `lo`. Internet on: a veth pair, the host
end in the host's namespace, the sandbox end (`eth0`) in the sandbox's, each pair a /31 of
the server's block of 100.64.0.0/10; traffic leaves through NAT. One nftables table per
server (`inet e2b_local_<tag>`) drops everything a sandbox sends to the host itself (its
loopback and its own addresses), to other sandboxes, to link-local and metadata addresses
and to loopback ranges, and lets the rest out masqueraded. Nothing reaches a sandbox unless
it opened the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import ipaddress
import logging
import os
import socket
import struct
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

log = logging.getLogger("e2b_local.netns")

POOL = ipaddress.ip_network("100.64.0.0/10")
BLOCK_PREFIX = 20  # 2048 sandboxes per server
_CLONE_NEWNET = 0x4000_0000
_SIOCSIFADDR, _SIOCSIFNETMASK, _SIOCSIFFLAGS, _SIOCADDRT = 0x8916, 0x891C, 0x8914, 0x890B
_IFF_UP, _IFF_RUNNING = 0x1, 0x40
_RTF_UP, _RTF_GATEWAY = 0x1, 0x2
_libc = ctypes.CDLL(None, use_errno=True)
T = TypeVar("T")


class NetworkError(Exception):
    """The host cannot give sandboxes a network."""


def _run(argv: list[str], stdin: str | None = None) -> None:
    r = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise NetworkError(f"{' '.join(argv[:3])}: {r.stderr.strip() or r.stdout.strip()}")


def _used_networks() -> list[ipaddress.IPv4Network]:
    out = subprocess.run(
        ["ip", "-4", "-o", "route", "show", "table", "all"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    nets = []
    for line in out.splitlines():
        word = line.split()[0] if line.split() else ""
        if word in ("local", "broadcast", "unreachable", "blackhole", "prohibit"):
            word = line.split()[1]
        try:
            nets.append(ipaddress.ip_network(word, strict=False))
        except ValueError:
            continue
    return [n for n in nets if isinstance(n, ipaddress.IPv4Network) and n.prefixlen > 0]


def _sockaddr_in(addr: str) -> bytes:
    return struct.pack("=HH4s8x", socket.AF_INET, 0, socket.inet_aton(addr))


def _sockaddr(addr: str) -> ctypes.Array[ctypes.c_ubyte]:
    return (ctypes.c_ubyte * 16).from_buffer_copy(_sockaddr_in(addr))


class _RtEntry(ctypes.Structure):
    _fields_ = [
        ("rt_pad1", ctypes.c_ulong),
        ("rt_dst", ctypes.c_ubyte * 16),
        ("rt_gateway", ctypes.c_ubyte * 16),
        ("rt_genmask", ctypes.c_ubyte * 16),
        ("rt_flags", ctypes.c_ushort),
        ("rt_pad2", ctypes.c_short),
        ("rt_pad3", ctypes.c_ulong),
        ("rt_pad4", ctypes.c_void_p),
        ("rt_metric", ctypes.c_short),
        ("rt_dev", ctypes.c_char_p),
        ("rt_mtu", ctypes.c_ulong),
        ("rt_window", ctypes.c_ulong),
        ("rt_irtt", ctypes.c_ushort),
    ]


def in_netns(netns_fd: int, work: Callable[[], T]) -> T:
    """Run `work` in a fresh thread that joined the network namespace open as `netns_fd`.

    Only that thread changes namespace; sockets it creates stay in the sandbox's namespace
    for their lifetime, wherever they are used afterwards. An fd, never a pid: a pid may name
    another process by the time it is used (pids are reused).
    """
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            if _libc.setns(netns_fd, _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
            result.append(work())
        except BaseException as e:
            error.append(e)

    t = threading.Thread(target=run, name="netns")
    t.start()
    t.join()
    if error:
        raise error[0]
    return result[0]


def _configure_inside(netns_fd: int, addr: str, gateway: str) -> None:
    """In the sandbox's netns: eth0 up with `addr`/31, default route."""

    def work() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            name = b"eth0".ljust(16, b"\0")
            fcntl.ioctl(s, _SIOCSIFADDR, name + _sockaddr_in(addr))
            fcntl.ioctl(s, _SIOCSIFNETMASK, name + _sockaddr_in("255.255.255.254"))
            flags = struct.pack("16sH14x", b"eth0", _IFF_UP | _IFF_RUNNING)
            fcntl.ioctl(s, _SIOCSIFFLAGS, flags)
            rt = _RtEntry()
            rt.rt_dst = _sockaddr("0.0.0.0")
            rt.rt_gateway = _sockaddr(gateway)
            rt.rt_genmask = _sockaddr("0.0.0.0")
            rt.rt_flags = _RTF_UP | _RTF_GATEWAY
            fcntl.ioctl(s, _SIOCADDRT, bytes(rt))

    try:
        in_netns(netns_fd, work)
    except Exception as e:
        raise NetworkError(f"configure the sandbox's eth0: {e}") from e


@dataclass
class Lease:
    index: int
    host_if: str


class Network:
    """The internet-on network of one e2b-local server (identified by `tag`)."""

    def __init__(self, tag: str, claim: Path) -> None:
        self.tag = tag
        self.claim = claim  # the block this server reserved, for cleanup after a crash
        self.table = f"e2b_local_{tag}"
        self.if_prefix = f"e2{tag}h"
        self.block: ipaddress.IPv4Network | None = None
        self.free: list[int] = []
        self._lock = threading.Lock()

    # -- server lifetime ---------------------------------------------------------------------

    def setup(self) -> None:
        """Pick a free address block, enable forwarding, install this server's rules."""
        self.teardown()
        used = _used_networks()
        blocks = list(POOL.subnets(new_prefix=BLOCK_PREFIX))
        start = int(self.tag, 16) % len(blocks)
        for i in range(len(blocks)):
            cand = blocks[(start + i) % len(blocks)]
            if not any(cand.overlaps(u) for u in used):
                self.block = cand
                break
        if self.block is None:
            raise NetworkError("no free /20 in 100.64.0.0/10 for sandbox networks")
        # Reserve the block: other servers see it as used; unassigned addresses in it are
        # unreachable (each sandbox's /31 is more specific).
        _run(["ip", "route", "add", "unreachable", str(self.block)])
        self.claim.write_text(str(self.block))
        self.free = list(range(self.block.num_addresses // 2 - 1, 0, -1))
        with open("/proc/sys/net/ipv4/ip_forward") as f:
            if f.read().strip() != "1":
                # Never turned off again: other software (Docker, a CNI, another server)
                # may rely on it by then, and this process cannot know (ARCHITECTURE.md).
                log.warning(
                    "enabling net.ipv4.ip_forward for internet-on sandboxes (NAT); it stays on "
                    "after e2b-local stops (sysctl -w net.ipv4.ip_forward=0 if nothing needs it)"
                )
                with open("/proc/sys/net/ipv4/ip_forward", "w") as w:
                    w.write("1")
        _run(["nft", "-f", "-"], self._ruleset())

    def _ruleset(self) -> str:
        sbx = f'"{self.if_prefix}*"'
        return f"""table inet {self.table} {{
  chain input {{
    type filter hook input priority filter - 10; policy accept;
    iifname {sbx} drop
  }}
  chain forward {{
    type filter hook forward priority filter - 10; policy accept;
    iifname {sbx} oifname "e2*" drop
    iifname {sbx} ip daddr {{ 0.0.0.0/8, 127.0.0.0/8, 169.254.0.0/16, {POOL} }} drop
    iifname {sbx} meta nfproto ipv6 drop
    iifname {sbx} fib daddr type {{ local, broadcast, multicast }} drop
    iifname {sbx} accept
    oifname {sbx} ct state established,related accept
    oifname {sbx} drop
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr {self.block} oifname != {sbx} masquerade
  }}
}}
"""

    def teardown(self) -> None:
        """Remove this server's rules, block reservation and any veth it left behind."""
        if self.claim.exists():
            block = self.claim.read_text().strip()
            subprocess.run(
                ["ip", "route", "del", "unreachable", block], capture_output=True, check=False
            )
            self.claim.unlink()
        subprocess.run(
            ["nft", "delete", "table", "inet", self.table], capture_output=True, check=False
        )
        links = subprocess.run(
            ["ip", "-o", "link", "show"], capture_output=True, text=True, check=False
        ).stdout
        for line in links.splitlines():
            name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
            if name.startswith(self.if_prefix):
                subprocess.run(["ip", "link", "del", name], capture_output=True, check=False)

    # -- sandboxes ---------------------------------------------------------------------------

    async def attach(self, netns_fd: int) -> Lease:
        """Give the sandbox whose network namespace is open as `netns_fd` an eth0 with a
        route out."""
        if self.block is None:
            raise NetworkError("sandbox networking is not set up")
        with self._lock:
            if not self.free:
                raise NetworkError(f"no free address in {self.block}")
            index = self.free.pop()
        lease = Lease(index, f"{self.if_prefix}{index}")
        base = int(self.block.network_address) + 2 * index
        host, inside = str(ipaddress.IPv4Address(base)), str(ipaddress.IPv4Address(base + 1))
        try:
            await _ip_batch(
                # ip opens the namespace through this process's fd: no pid to go stale
                f"link add {lease.host_if} type veth peer name eth0 "
                f"netns /proc/{os.getpid()}/fd/{netns_fd}\n"
                f"addr add {host}/31 dev {lease.host_if}\n"
                f"link set {lease.host_if} up\n"
            )
            await asyncio.get_running_loop().run_in_executor(
                None, _configure_inside, netns_fd, inside, host
            )
        except BaseException:
            await self.release(lease)
            raise
        return lease

    async def release(self, lease: Lease) -> None:
        """Delete the veth (gone already if the sandbox's netns died) and free its address."""
        with contextlib.suppress(NetworkError):
            await _ip_batch(f"link del {lease.host_if}\n")
        with self._lock:
            self.free.append(lease.index)


async def _ip_batch(commands: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        "ip",
        "-batch",
        "-",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate(commands.encode())
    if proc.returncode != 0:
        raise NetworkError(f"ip: {err.decode(errors='replace').strip()}")
