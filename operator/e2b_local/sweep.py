"""What e2b-local servers that died without cleaning up (kill -9, OOM, power cut) left behind.

A server that stops removes its nftables table, the route reserving its address block, its run
dir and its cgroups; one killed outright leaves them until it starts again on the same state
dir, which may never happen. So every server start removes those of all servers that are not
running. A running server holds a lock on `<state dir>/server.lock` for its whole life: the
lock files held (/proc/locks) name the live servers (tag = hash of the state dir) and the
address blocks they claim (`<state dir>/network-block`); anything else of ours is a dead
server's. A
host-wide lock serialises sweeps with servers setting up their own share, so a server
restarting on a dead one's state dir never loses what it is making.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import isolation
from .netns import BLOCK_PREFIX, POOL

log = logging.getLogger("e2b_local.sweep")

HOST_LOCK = Path("/run/lock/e2b-local.lock")
TAG = r"[0-9a-f]{6}"
DELETED = " (deleted)"


@contextlib.contextmanager
def host_lock() -> Iterator[None]:
    """Held while sweeping and while a server sets up its share of the host."""
    HOST_LOCK.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(HOST_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def start_host(host: isolation.Host) -> None:
    """Sweep, then set up this server's share of the host, under the host-wide lock."""
    with host_lock():
        removed = sweep()
        if removed:
            log.warning("removed what dead e2b-local servers left: %s", ", ".join(removed))
        host.startup()


@dataclass
class Live:
    """The servers running on the host: their tags and the blocks they claim."""

    tags: set[str] = field(default_factory=set)
    blocks: set[str] = field(default_factory=set)
    sure: bool = True  # False when a live server's claim cannot be read


def live_servers() -> Live:
    """The servers whose lock is held: flock holders in /proc/locks with a `server.lock`
    open (reading only their fds keeps this quick on a host with thousands of processes)."""
    held: dict[str, set[int]] = {}
    with open("/proc/locks") as f:
        for line in f:
            words = line.split()
            if len(words) > 5 and words[1] == "FLOCK":  # waiters read "-> FLOCK"
                held.setdefault(words[4], set()).add(int(words[5].rsplit(":", 1)[1]))
    live = Live()
    for pid, inodes in held.items():
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    _note(live, os.readlink(fd), fd.stat().st_ino in inodes)
    return live


def _note(live: Live, target: str, locked: bool) -> None:
    deleted = target.endswith(DELETED)
    lock = Path(target.removesuffix(DELETED))
    if not locked or lock.name != isolation.LOCK_FILE:
        return
    live.tags.add(isolation.server_tag(lock.parent))
    try:
        live.blocks.add((lock.parent / isolation.NETWORK_CLAIM).read_text().strip())
    except FileNotFoundError:
        live.sure = live.sure and not deleted
    except OSError:
        live.sure = False


def _out(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout


def _run(*argv: str) -> bool:
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def sweep() -> list[str]:
    """Remove what servers that are not running left; say what was removed. Everything is
    listed before the live servers are: a server is live before it makes anything."""
    nft = _out("nft", "list", "tables")
    tables = set(re.findall(rf"^table inet e2b_local_({TAG})$", nft, re.M))
    runs = set()
    if isolation.RUN_ROOT.is_dir():
        runs = {d.name for d in isolation.RUN_ROOT.iterdir() if re.fullmatch(TAG, d.name)}
    groups = {
        p.name.removeprefix("e2b-local-")
        for p in isolation.CGROUP_ROOT.glob("*/e2b-local-*")
        if re.fullmatch(TAG, p.name.removeprefix("e2b-local-"))
    }
    veths = re.findall(rf"^\d+: (e2({TAG})h\d+)[@:]", _out("ip", "-o", "link", "show"), re.M)
    blocks = set(re.findall(r"^unreachable (\S+)", _out("ip", "-4", "route", "show"), re.M))
    live = live_servers()
    removed = []
    for tag in sorted(tables - live.tags):
        if _run("nft", "delete", "table", "inet", f"e2b_local_{tag}"):
            removed.append(f"nftables table e2b_local_{tag}")
    for name, tag in veths:
        if tag not in live.tags and _run("ip", "link", "del", name):
            removed.append(f"veth {name}")
    for tag in sorted(groups - live.tags):
        isolation.kill_groups(f"e2b-local-{tag}")
        isolation.remove_groups(f"e2b-local-{tag}", parents=True)
        if not isolation.cgroup_parents(f"e2b-local-{tag}"):
            removed.append(f"cgroups e2b-local-{tag}")
    for tag in sorted(runs - live.tags):
        run = isolation.RUN_ROOT / tag
        if not isolation.is_mounted(run):
            shutil.rmtree(run, ignore_errors=True)
            removed.append(str(run))
    for block in sorted(blocks - live.blocks) if live.sure else ():
        if _ours(block) and _run("ip", "route", "del", "unreachable", block):
            removed.append(f"route unreachable {block}")
    return removed


def _ours(block: str) -> bool:
    """True for a block of the shape servers reserve: a /20 of 100.64.0.0/10."""
    try:
        net = ipaddress.ip_network(block)
    except ValueError:
        return False
    return net.version == 4 and net.prefixlen == BLOCK_PREFIX and net.subnet_of(POOL)
