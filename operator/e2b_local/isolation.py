"""Host mechanisms for sandbox isolation: capability probe, layer filesystem, base mask, cgroups.

Layout under the state dir:
  run/              tmpfs mounted by the server (overlayfs refuses layers that lie inside the
                    host root, which is the lowest layer, so every upper and template layer
                    lives on this separate filesystem)
  run/mask/         the base mask layer: hides the host's private directories (/root, /home,
                    /tmp, /work, ...) and replaces /etc/passwd, /etc/shadow, /etc/hosts
  run/templates/    built template layers (read-only lowers of sandboxes)
  run/sbx/<id>/     per-sandbox upper, work and mountpoint dirs and the control socket
  templates/        template metadata and layer tarballs that survive restarts
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("e2b_local.isolation")

CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_CONTROLLERS = ("memory", "cpu", "pids", "freezer")
CGROUP_PARENT = "e2b-local"
KEEP_TOP = {"bin", "lib", "lib32", "lib64", "libx32", "sbin", "usr", "etc", "var", "opt"}
EMPTY_TOP = {"dev", "proc", "sys", "tmp", "root", "home", "run", "mnt", "media", "srv"}
SANDBOX_USER = ("user", 1000, 1000, "/home/user")
CFS_PERIOD_US = 100_000


@dataclass
class HostCaps:
    """What the host offers; missing pieces are logged at start-up, never silently skipped."""

    root: bool = False
    overlay: bool = False
    namespaces: bool = False
    cgroups: dict[str, bool] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return self.root and self.overlay and self.namespaces


def probe() -> HostCaps:
    caps = HostCaps(root=os.geteuid() == 0)
    if not caps.root:
        caps.missing.append("not running as root: no mounts, namespaces or cgroups")
    with open("/proc/filesystems") as f:
        caps.overlay = "overlay" in f.read()
    if not caps.overlay:
        caps.missing.append("kernel has no overlayfs")
    caps.namespaces = shutil.which("unshare") is not None and os.path.exists("/proc/self/ns/pid")
    if not caps.namespaces:
        caps.missing.append("no unshare(1) or no PID namespaces")
    for ctl in CGROUP_CONTROLLERS:
        d = CGROUP_ROOT / ctl
        ok = caps.root and d.is_dir() and os.access(d, os.W_OK)
        caps.cgroups[ctl] = ok
        if not ok:
            caps.missing.append(f"cgroup v1 controller '{ctl}' not writable: its limits are off")
    protect = subprocess.run(
        ["sh", "-c", "echo -1000 > /proc/self/oom_score_adj"], capture_output=True, check=False
    )
    if protect.returncode != 0:
        caps.missing.append(
            "cannot lower oom_score_adj: a sandbox's init is not shielded from its OOM killer"
        )
    if (CGROUP_ROOT / "memory").is_dir() and not (
        CGROUP_ROOT / "memory" / "memory.memsw.limit_in_bytes"
    ).exists():
        log.info("no swap accounting (memory.memsw); the memory limit covers RAM only")
    for m in caps.missing:
        log.warning("isolation degraded: %s", m)
    return caps


def is_mounted(path: Path) -> bool:
    target = str(path.resolve())
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == target for line in f)


def mount_runfs(run: Path) -> None:
    """Mount a private tmpfs for layers at `run` (cleaning any leftover of a previous run)."""
    run.mkdir(parents=True, exist_ok=True)
    while is_mounted(run):
        subprocess.run(["umount", "-l", str(run)], check=False)
    for child in run.iterdir():
        shutil.rmtree(child, ignore_errors=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=700", "e2b-local", str(run)], check=True)


def umount_runfs(run: Path) -> None:
    if is_mounted(run):
        subprocess.run(["umount", "-l", str(run)], check=False)


def _opaque(path: Path, mode: int = 0o755) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    os.setxattr(path, "trusted.overlay.opaque", b"y")


def _whiteout(path: Path) -> None:
    os.mknod(path, 0o600 | 0o020000, os.makedev(0, 0))


def build_mask(mask: Path, hostname: str = "e2b-local") -> None:
    """Create the mask layer that sits between template layers and the host root."""
    mask.mkdir(parents=True, exist_ok=True)
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
    name, uid, gid, home = SANDBOX_USER
    (mask / home.lstrip("/")).mkdir(parents=True, exist_ok=True)
    os.chown(mask / home.lstrip("/"), uid, gid)
    _opaque(mask / "var" / "tmp", 0o1777)
    etc = mask / "etc"
    etc.mkdir(exist_ok=True)
    passwd = [
        ln for ln in Path("/etc/passwd").read_text().splitlines() if ln.split(":")[2] != str(uid)
    ]
    passwd.append(f"{name}:x:{uid}:{gid}::{home}:/bin/bash")
    group = [
        ln for ln in Path("/etc/group").read_text().splitlines() if ln.split(":")[2] != str(gid)
    ]
    group.append(f"{name}:x:{gid}:")
    (etc / "passwd").write_text("\n".join(passwd) + "\n")
    (etc / "group").write_text("\n".join(group) + "\n")
    shadow = [f"{ln.split(':')[0]}:*:19000:0:99999:7:::" for ln in passwd]
    (etc / "shadow").write_text("\n".join(shadow) + "\n")
    (etc / "shadow").chmod(0o640)
    (etc / "hostname").write_text(hostname + "\n")
    (etc / "hosts").write_text(f"127.0.0.1 localhost {hostname}\n::1 localhost\n")
    # Docker's python images let pip install system-wide; so does the emulated base.
    for marker in Path("/usr/lib").glob("python3*/EXTERNALLY-MANAGED"):
        d = mask / marker.parent.relative_to("/")
        d.mkdir(parents=True, exist_ok=True)
        _whiteout(d / marker.name)
    for secret in ("gshadow", "ssh"):
        if os.path.lexists(f"/etc/{secret}"):
            _whiteout(etc / secret)


class Cgroups:
    """cgroup v1 groups of one sandbox under <controller>/e2b-local/<id>."""

    def __init__(self, caps: HostCaps, sandbox_id: str) -> None:
        self.paths = [
            CGROUP_ROOT / ctl / CGROUP_PARENT / sandbox_id
            for ctl in CGROUP_CONTROLLERS
            if caps.cgroups.get(ctl)
        ]

    def create(self, memory_mb: int, cpu_count: int) -> None:
        for p in self.paths:
            p.mkdir(parents=True, exist_ok=True)
            ctl = p.parent.parent.name
            if ctl == "memory":
                limit = str(memory_mb * 1024 * 1024)
                (p / "memory.limit_in_bytes").write_text(limit)
                memsw = p / "memory.memsw.limit_in_bytes"
                if memsw.exists():
                    memsw.write_text(limit)
            elif ctl == "cpu":
                (p / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
                (p / "cpu.cfs_quota_us").write_text(str(cpu_count * CFS_PERIOD_US))
            elif ctl == "pids":
                (p / "pids.max").write_text("4096")

    @property
    def procs_files(self) -> list[str]:
        return [str(p / "cgroup.procs") for p in self.paths]

    def pids(self) -> set[int]:
        out: set[int] = set()
        for p in self.paths:
            with contextlib.suppress(OSError):
                out.update(int(x) for x in (p / "cgroup.procs").read_text().split())
        return out

    def freezer(self) -> Path | None:
        return next((p for p in self.paths if p.parent.parent.name == "freezer"), None)

    def freeze(self, frozen: bool) -> bool:
        f = self.freezer()
        if f is None:
            return False
        try:
            (f / "freezer.state").write_text("FROZEN" if frozen else "THAWED")
        except FileNotFoundError:
            return False  # already removed by a concurrent destroy
        return True

    def oom_kills(self) -> int:
        for p in self.paths:
            if p.parent.parent.name == "memory":
                with contextlib.suppress(OSError):
                    for line in (p / "memory.oom_control").read_text().splitlines():
                        if line.startswith("oom_kill "):
                            return int(line.split()[1])
        return 0

    def remove(self) -> None:
        for p in self.paths:
            with contextlib.suppress(OSError):
                p.rmdir()


def cleanup_stale_cgroups(caps: HostCaps) -> int:
    """Kill leftovers of a previous run still in e2b-local cgroups and remove the groups."""
    removed = 0
    for ctl in CGROUP_CONTROLLERS:
        parent = CGROUP_ROOT / ctl / CGROUP_PARENT
        if not caps.cgroups.get(ctl) or not parent.is_dir():
            continue
        for child in parent.iterdir():
            if not child.is_dir():
                continue
            if ctl == "freezer":
                with contextlib.suppress(OSError):
                    (child / "freezer.state").write_text("THAWED")
            with contextlib.suppress(OSError):
                for pid in (child / "cgroup.procs").read_text().split():
                    with contextlib.suppress(OSError):
                        os.kill(int(pid), 9)
            removed += 1
    return removed


def remove_stale_cgroup_dirs(caps: HostCaps, parents: bool = False) -> None:
    """Remove empty per-sandbox cgroups (and the e2b-local parents when `parents`)."""
    for ctl in CGROUP_CONTROLLERS:
        parent = CGROUP_ROOT / ctl / CGROUP_PARENT
        if caps.cgroups.get(ctl) and parent.is_dir():
            for child in parent.iterdir():
                if child.is_dir():
                    with contextlib.suppress(OSError):
                        child.rmdir()
            if parents:
                with contextlib.suppress(OSError):
                    parent.rmdir()
