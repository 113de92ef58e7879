"""The host side of sandbox isolation: what the host offers, and one server's share of it.

Layout (all mounts live in the server's private mount namespace):
  /run/e2b-local/<tag>/  `run`: a tmpfs (overlayfs refuses layers inside the host root, which
                    is the lowest layer, so every upper and template layer lives on this
                    separate filesystem); outside the state dir, because crun reaches a
                    sandbox's root as the sandbox's unprivileged root user, who must be able
                    to traverse every directory above it
  run/hostroot/     the host root, idmapped (host uid N appears as ID_BASE + N)
  run/mask/         the base mask layer: hides the host's private files and directories and
                    replaces /etc/passwd, /etc/shadow, /etc/hosts
  run/templates/    built template layers (read-only lowers of sandboxes)
  run/sbx/<id>/     per-sandbox upper, work, root (the overlay) and the control socket
  <state>/templates/ template metadata and layer tarballs that survive restarts
  <state>/crun/     crun's state of this server's sandboxes

Each server owns the cgroups under `e2b-local-<tag>` (tag: a hash of its state dir), its own
nftables table and veth names, and cleans up only those, so servers never touch each other.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .idmap import ID_BASE, host_id, idmapped_bind, mapping_userns
from .netns import Network

log = logging.getLogger("e2b_local.isolation")

CGROUP_ROOT = Path("/sys/fs/cgroup")
RUN_ROOT = Path("/run/e2b-local")
LOCK_FILE = "server.lock"  # in the state dir, held open by the server for its whole life
NETWORK_CLAIM = "network-block"  # in the state dir: the address block the server reserved
CGROUP_CONTROLLERS = ("memory", "cpu", "pids", "freezer")
KEEP_TOP = {"bin", "lib", "lib32", "lib64", "libx32", "sbin", "usr", "etc", "var", "opt"}
EMPTY_TOP = {"dev", "proc", "sys", "tmp", "root", "home", "run", "mnt", "media", "srv"}
# Host files and directories under kept top-level directories that sandboxes must not see.
HIDDEN = (
    "etc/shadow-",
    "etc/gshadow",
    "etc/gshadow-",
    "etc/passwd-",
    "etc/group-",
    "etc/subuid",
    "etc/subgid",
    "etc/ssh",
    "etc/ssl/private",
    "etc/sudoers.d",
    "etc/kubernetes",
    "etc/machine-id",
    "var/backups",
    "var/mail",
    "var/spool",
)
EMPTIED = ("var/log", "var/tmp")
# Package managers' state stays visible in /var/lib; the rest (databases, services) is hidden.
VAR_LIB_KEPT = {"dpkg", "apt", "ucf", "pam", "python", "misc", "ca-certificates", "dbus"}
SANDBOX_USER = ("user", 1000, 1000, "/home/user")
REQUIRED_TOOLS = ("crun", "nft", "ip")


@dataclass
class HostCaps:
    """What the host offers; anything missing stops the server with the reason."""

    missing: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return not self.missing


def probe() -> HostCaps:
    caps = HostCaps()
    if os.geteuid() != 0:
        caps.missing.append("not running as root: no mounts, namespaces or cgroups")
    with open("/proc/filesystems") as f:
        if "overlay" not in f.read():
            caps.missing.append("kernel has no overlayfs")
    for tool in REQUIRED_TOOLS:
        if shutil.which(tool) is None:
            caps.missing.append(
                f"`{tool}` not found (Debian: apt-get install crun nftables iproute2)"
            )
    for ctl in CGROUP_CONTROLLERS:
        d = CGROUP_ROOT / ctl
        if not (d.is_dir() and os.access(d, os.W_OK)):
            caps.missing.append(f"cgroup v1 controller '{ctl}' not mounted or not writable")
    return caps


def server_tag(state_dir: Path) -> str:
    """Six hex digits naming one server's cgroups, nftables table and veths."""
    return hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:6]


class Host:
    """One server's share of the host: layer filesystem, cgroup parent, network, crun state."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.tag = server_tag(state_dir)
        self.run_dir = RUN_ROOT / self.tag
        self.hostroot = self.run_dir / "hostroot"
        self.mask = self.run_dir / "mask"
        self.crun_root = state_dir / "crun"
        self.cgroup_parent = f"e2b-local-{self.tag}"
        self.network = Network(self.tag, state_dir / NETWORK_CLAIM)
        self.seccomp_bpf: str | None = None  # base64, compiled by crun for the first sandbox
        self.crun_args = ["--root", str(self.crun_root), "--cgroup-manager=cgroupfs"]
        # Every sandbox's init holds the read end; this process alone holds the write end, so
        # when the server dies, however it dies, its sandboxes see EOF and end.
        self.lifeline, self._lifeline_w = os.pipe2(os.O_CLOEXEC)
        self._lock_fd: int | None = None

    def lock(self) -> None:
        """Refuse a second server on the same state dir (it would share every resource)."""
        fd = os.open(self.state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SystemExit(f"another e2b-local server uses {self.state_dir}") from None
        self._lock_fd = fd

    def startup(self) -> None:
        """Clean what a previous run of this server left, then mount and set up afresh."""
        self.kill_stale()
        self.crun_root.mkdir(mode=0o700, exist_ok=True)
        for child in self.crun_root.iterdir():
            shutil.rmtree(child, ignore_errors=True)
        RUN_ROOT.mkdir(mode=0o711, parents=True, exist_ok=True)
        mount_runfs(self.run_dir)
        self.remove_cgroups()
        self.hostroot.mkdir()
        userns = mapping_userns()
        try:
            idmapped_bind(Path("/"), self.hostroot, userns)
        finally:
            os.close(userns)
        build_mask(self.mask, hidden=(self.state_dir,))
        self.network.setup()

    def shutdown(self) -> None:
        self.end_sandboxes()
        self.network.teardown()
        umount_runfs(self.run_dir)
        for d in (self.run_dir, RUN_ROOT):
            with contextlib.suppress(OSError):
                d.rmdir()
        self.remove_cgroups(parents=True)

    def cgroup(self, ctl: str, sandbox_id: str) -> Path:
        return CGROUP_ROOT / ctl / self.cgroup_parent / sandbox_id

    def cgroups_path(self, sandbox_id: str) -> str:
        """The OCI cgroupsPath of a sandbox."""
        return f"{self.cgroup_parent}/{sandbox_id}"

    def end_sandboxes(self, timeout: float = 10.0) -> None:
        """Wait until the processes of this server's sandboxes are gone (their inits were
        killed, which ends each one's pid namespace; reading, never signalling, what the
        cgroups list), then drop crun's state of them: all sandboxes at once."""
        deadline = time.monotonic() + timeout
        while self._running() and time.monotonic() < deadline:
            time.sleep(0.02)
        for child in self.crun_root.iterdir():
            shutil.rmtree(child, ignore_errors=True)

    def _running(self) -> bool:
        """Some process is left in a sandbox cgroup of this server (pids controller)."""
        for procs in (CGROUP_ROOT / "pids" / self.cgroup_parent).glob("*/cgroup.procs"):
            with contextlib.suppress(OSError):
                if procs.read_text().strip():
                    return True
        return False

    def kill_stale(self) -> int:
        """Kill processes left in this server's cgroups by a previous run; count the groups."""
        return kill_groups(self.cgroup_parent)

    def remove_cgroups(self, parents: bool = False) -> None:
        """Remove this server's empty per-sandbox cgroups (and its parents when `parents`)."""
        remove_groups(self.cgroup_parent, parents)


def cgroup_parents(name: str, hierarchies: tuple[str, ...] = ("*",)) -> list[Path]:
    """The groups called `name` under each (or each given) cgroup hierarchy."""
    return [p for h in hierarchies for p in CGROUP_ROOT.glob(f"{h}/{name}") if p.is_dir()]


def kill_groups(name: str) -> int:
    """Kill the sandbox processes in the per-sandbox groups under `name`; count the groups.

    Only the v1 pids hierarchy is read (crun puts a sandbox's processes there and nothing
    else), and only processes of sandbox users (host uid >= ID_BASE) are killed: on a hybrid
    host, same-named groups of the v2 hierarchy can hold unrelated host processes."""
    groups = [g for p in cgroup_parents(name, ("pids",)) for g in p.iterdir() if g.is_dir()]
    for group in groups:
        with contextlib.suppress(OSError):
            (CGROUP_ROOT / "freezer" / name / group.name / "freezer.state").write_text("THAWED")
        with contextlib.suppress(OSError):
            for pid in (group / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    if os.stat(f"/proc/{pid}").st_uid >= ID_BASE:
                        os.kill(int(pid), signal.SIGKILL)
    return len(groups)


def remove_groups(name: str, parents: bool = False) -> None:
    """Remove the empty per-sandbox groups under `name` (and `name` itself when `parents`)."""
    for parent in cgroup_parents(name):
        for child in parent.iterdir():
            if child.is_dir():
                with contextlib.suppress(OSError):
                    child.rmdir()
        if parents:
            with contextlib.suppress(OSError):
                parent.rmdir()


def is_mounted(path: Path) -> bool:
    target = str(path.resolve())
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == target for line in f)


def mount_runfs(run: Path) -> None:
    """Mount a private tmpfs for layers at `run` (cleaning any leftover of a previous run).

    Mode 0711: crun reaches a sandbox's root as the sandbox's (unprivileged) root user.
    """
    run.mkdir(parents=True, exist_ok=True)
    while is_mounted(run):
        subprocess.run(["umount", "-l", str(run)], check=False)
    for child in run.iterdir():
        shutil.rmtree(child, ignore_errors=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=711", "e2b-local", str(run)], check=True)


def umount_runfs(run: Path) -> None:
    if is_mounted(run):
        subprocess.run(["umount", "-l", str(run)], check=False)


def _opaque(path: Path, mode: int = 0o755, owner: int = 0) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    os.chown(path, host_id(owner), host_id(owner))
    os.setxattr(path, "trusted.overlay.opaque", b"y")


def _whiteout(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chown(path.parent, ID_BASE, ID_BASE)
    os.mknod(path, 0o600 | 0o020000, os.makedev(0, 0))


def _hidden_already(mask: Path, rel: str) -> bool:
    """True if the mask already hides `rel` or one of its parents (whiteout or opaque dir)."""
    cur = mask
    for part in Path(rel).parts:
        cur = cur / part
        if not os.path.lexists(cur):
            return False
        if not cur.is_dir() or _is_opaque(cur):
            return True
    return False


def _is_opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    os.chown(path, ID_BASE, ID_BASE)


def build_mask(mask: Path, hidden: tuple[Path, ...] = (), hostname: str = "e2b-local") -> None:
    """Create the mask layer that sits between template layers and the host root.

    Owned by sandbox root (host uid ID_BASE), like the idmapped host root below it. `hidden`
    host paths (the server's state dir) are whited out too.
    """
    mask.mkdir(parents=True, exist_ok=True)
    os.chown(mask, ID_BASE, ID_BASE)
    for entry in os.listdir("/"):
        if entry in KEEP_TOP:
            continue
        if entry in EMPTY_TOP:
            _opaque(mask / entry, 0o1777 if entry == "tmp" else 0o755)
        else:
            _whiteout(mask / entry)
    for d in EMPTY_TOP:
        if not (mask / d).exists():
            _opaque(mask / d, 0o1777 if d == "tmp" else 0o755)
    (mask / "root").chmod(0o700)
    for rel in (*HIDDEN, *(str(p.resolve()).lstrip("/") for p in hidden)):
        if os.path.lexists(f"/{rel}") and not _hidden_already(mask, rel):
            _whiteout(mask / rel)
    for rel in EMPTIED:
        _opaque(mask / rel, 0o1777 if rel == "var/tmp" else 0o755)
    for entry in os.listdir("/var/lib"):
        if entry not in VAR_LIB_KEPT:
            _whiteout(mask / "var" / "lib" / entry)
    name, uid, gid, home = SANDBOX_USER
    _opaque(mask / home.lstrip("/"), 0o755, uid)
    passwd = [
        ln for ln in Path("/etc/passwd").read_text().splitlines() if ln.split(":")[2] != str(uid)
    ]
    passwd.append(f"{name}:x:{uid}:{gid}::{home}:/bin/bash")
    group = [
        ln for ln in Path("/etc/group").read_text().splitlines() if ln.split(":")[2] != str(gid)
    ]
    group.append(f"{name}:x:{gid}:")
    etc = mask / "etc"
    _write(etc / "passwd", "\n".join(passwd) + "\n")
    _write(etc / "group", "\n".join(group) + "\n")
    shadow = [f"{ln.split(':')[0]}:*:19000:0:99999:7:::" for ln in passwd]
    _write(etc / "shadow", "\n".join(shadow) + "\n", 0o640)
    _write(etc / "hostname", hostname + "\n")
    _write(etc / "hosts", f"127.0.0.1 localhost {hostname}\n::1 localhost\n")
    # Docker's python images let pip install system-wide; so does the emulated base.
    for marker in Path("/usr/lib").glob("python3*/EXTERNALLY-MANAGED"):
        _whiteout(mask / marker.relative_to("/"))
    for d in (etc, mask / "usr", mask / "usr" / "lib", mask / "var"):
        if d.is_dir():
            os.chown(d, ID_BASE, ID_BASE)


class Cgroups:
    """The cgroup v1 groups crun made for one sandbox under the server's parent."""

    def __init__(self, host: Host, sandbox_id: str) -> None:
        self.paths = {ctl: host.cgroup(ctl, sandbox_id) for ctl in CGROUP_CONTROLLERS}
        self.cpuacct = host.cgroup("cpuacct", sandbox_id)

    def usage(self) -> tuple[int, int, int, int]:
        """CPU time (ns), memory used without page cache, page cache and the memory limit
        (bytes); OSError once the groups are gone."""
        cpu = int((self.cpuacct / "cpuacct.usage").read_text())
        mem = self.paths["memory"]
        used = int((mem / "memory.usage_in_bytes").read_text())
        limit = int((mem / "memory.limit_in_bytes").read_text())
        stat = dict(line.split() for line in (mem / "memory.stat").read_text().splitlines())
        cache = int(stat.get("total_cache", stat.get("cache", "0")))
        return cpu, max(0, used - cache), cache, limit

    def pids(self) -> set[int]:
        out: set[int] = set()
        with contextlib.suppress(OSError):
            out.update(int(x) for x in (self.paths["pids"] / "cgroup.procs").read_text().split())
        return out

    def freeze(self, frozen: bool) -> bool:
        try:
            (self.paths["freezer"] / "freezer.state").write_text("FROZEN" if frozen else "THAWED")
        except FileNotFoundError:
            return False  # already removed by a concurrent destroy
        return True
