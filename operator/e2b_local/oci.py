"""The OCI runtime config (config.json) of one sandbox, run by crun.

What a sandbox gets is what Docker gives a container, plus a user namespace: Docker's default
capabilities (all held over the sandbox's own namespaces only), Docker's default seccomp
profile, masked and read-only /proc and /sys paths, a device cgroup that allows only the
standard character devices, and its own pid, mount, ipc, uts, cgroup and network namespaces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .idmap import ID_BASE, ID_COUNT
from .seccomp import oci_seccomp

# Docker's default capability set.
CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)
MASKED_PATHS = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
# (major, minor or None for any): null, zero, full, random, urandom, tty, console, ptmx, pts
ALLOWED_DEVICES = ((1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2), (136, None))
PIDS_LIMIT = 4096
CFS_PERIOD_US = 100_000
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class SandboxSpec:
    """What differs between sandboxes."""

    rootfs: str
    hostname: str
    args: list[str]
    cgroups_path: str
    memory_mb: int
    cpu_count: int


def _mounts() -> list[dict[str, Any]]:
    hardened = ["nosuid", "noexec", "nodev"]
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": hardened},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": [*hardened, "mode=1777", "size=65536k"],
        },
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": hardened},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": [*hardened, "ro"]},
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": [*hardened, "relatime", "ro"],
        },
    ]


def _devices() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [{"allow": False, "access": "rwm"}]
    for major, minor in ALLOWED_DEVICES:
        rule: dict[str, Any] = {"allow": True, "type": "c", "major": major, "access": "rwm"}
        if minor is not None:
            rule["minor"] = minor
        rules.append(rule)
    return rules


def config(spec: SandboxSpec, seccomp_bpf: str | None = None) -> dict[str, Any]:
    """The whole config.json for `spec`.

    `seccomp_bpf` (base64) is the filter crun compiled from the same profile for an earlier
    sandbox: crun loads it as is (its `run.oci.seccomp_bpf_data` annotation) instead of
    compiling the profile again, which costs a fifth of a sandbox's start.
    """
    caps = list(CAPABILITIES)
    # A new network namespace has only `lo`; the server adds eth0 when internet is on.
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount", "user", "cgroup", "network")]
    mapping = [{"containerID": 0, "hostID": ID_BASE, "size": ID_COUNT}]
    seccomp: dict[str, Any] = (
        {"annotations": {"run.oci.seccomp_bpf_data": seccomp_bpf}}
        if seccomp_bpf
        else {"linux": {"seccomp": oci_seccomp(frozenset(caps))}}
    )
    out: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "root": {"path": spec.rootfs, "readonly": False},
        "hostname": spec.hostname,
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": spec.args,
            "env": [f"PATH={DEFAULT_PATH}"],
            "cwd": "/",
            "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
            "noNewPrivileges": False,  # sudo and other setuid programs work, as in Docker
        },
        "mounts": _mounts(),
        "linux": {
            "uidMappings": mapping,
            "gidMappings": mapping,
            "namespaces": namespaces,
            "cgroupsPath": spec.cgroups_path,
            "resources": {
                # memory + swap = memory: no swap, as on E2B
                "memory": {"limit": spec.memory_mb << 20, "swap": spec.memory_mb << 20},
                "cpu": {"quota": spec.cpu_count * CFS_PERIOD_US, "period": CFS_PERIOD_US},
                "pids": {"limit": PIDS_LIMIT},
                "devices": _devices(),
            },
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
            "rootfsPropagation": "rprivate",
        },
    }
    out.setdefault("annotations", {}).update(seccomp.get("annotations", {}))
    out["linux"].update(seccomp.get("linux", {}))
    return out
