"""Docker's default seccomp profile as an OCI `linux.seccomp` section.

The profile (`profiles/docker-seccomp-default.json`, vendored verbatim) is written for
Docker's engine: rules carry `includes`/`excludes` on capabilities, architectures and kernel
versions. This resolves them for one set of capabilities on this machine's architecture,
the way Docker does before handing the profile to the OCI runtime.
"""

from __future__ import annotations

import json
import platform
from functools import cache
from pathlib import Path
from typing import Any

PROFILE = Path(__file__).with_name("profiles") / "docker-seccomp-default.json"
# Removed from the allow list (Docker >= 25 dropped them too): a large kernel attack surface.
DENIED = frozenset({"io_uring_setup", "io_uring_enter", "io_uring_register"})
_ARCHES = {"x86_64": "amd64", "aarch64": "arm64"}


def _kernel() -> tuple[int, ...]:
    return tuple(int(p) for p in platform.release().split("-")[0].split(".")[:2])


def _applies(rule: dict[str, Any], caps: frozenset[str], arch: str) -> bool:
    inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
    if inc.get("caps") and not set(inc["caps"]) <= caps:
        return False
    if inc.get("arches") and arch not in inc["arches"]:
        return False
    if inc.get("minKernel"):
        want = tuple(int(p) for p in inc["minKernel"].split("."))
        if _kernel() < want:
            return False
    if exc.get("caps") and set(exc["caps"]) & caps:
        return False
    return not (exc.get("arches") and arch in exc["arches"])


@cache
def oci_seccomp(caps: frozenset[str]) -> dict[str, Any]:
    """The OCI seccomp section for a process holding `caps` on this machine."""
    profile = json.loads(PROFILE.read_text())
    machine = platform.machine()
    arch = _ARCHES.get(machine, machine)
    scmp_arch = {"amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64"}.get(arch)
    architectures: list[str] = []
    for entry in profile["archMap"]:
        if entry["architecture"] == scmp_arch:
            architectures = [entry["architecture"], *entry["subArchitectures"]]
    syscalls = []
    for rule in profile["syscalls"]:
        if not _applies(rule, caps, arch):
            continue
        names = [n for n in rule["names"] if n not in DENIED]
        if not names:
            continue
        out: dict[str, Any] = {"names": names, "action": rule["action"]}
        if rule.get("args"):
            out["args"] = [
                {k: a[k] for k in ("index", "value", "valueTwo", "op") if k in a}
                for a in rule["args"]
            ]
        if rule.get("errnoRet") is not None:
            out["errnoRet"] = rule["errnoRet"]
        syscalls.append(out)
    return {
        "defaultAction": profile["defaultAction"],
        "defaultErrnoRet": 1,  # EPERM, as Docker answers calls it does not allow
        "architectures": architectures,
        "syscalls": syscalls,
    }
