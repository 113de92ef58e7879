"""Template fields E2B cannot honour: named on the E2BTemplate instead of silently ignored."""

from __future__ import annotations

from ..api import E2BTemplateSpec

PLAN_DISK_GB = 10
"""Disk of an E2B sandbox on the Hobby plan (Pro: 20 GiB); a template cannot ask for more."""


def unhonoured(spec: E2BTemplateSpec) -> tuple[str, ...]:
    """One message per field set beyond what the backend gives, naming the field and why."""
    req = spec.requirements
    out = []
    if req.gpu_enabled:
        out.append(
            "requirements.gpuEnabled: E2B sandboxes have no GPU; the template is built and "
            "runs on CPU only (set gpuEnabled: false, or run GPU work outside E2B)"
        )
    if req.storage_gb > PLAN_DISK_GB:
        out.append(
            f"requirements.storageGB: {req.storage_gb} GiB asked, but E2B gives every sandbox "
            f"the disk of the team's plan ({PLAN_DISK_GB} GiB on Hobby, 20 GiB on Pro) and a "
            f"template cannot ask for more; lower storageGB to {PLAN_DISK_GB} or less"
        )
    return tuple(out)
