"""E2BTemplate decisions: spec hash + the last build poll -> build action + status. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from ..api import E2BTemplateStatus
from .conditions import Want, merge
from .observed import BuildProgress, Problem

LOG_TAIL = 30

Action = Literal["build", "poll", "none"]


@dataclass(frozen=True)
class TemplateObservation:
    generation: int
    spec_hash: str
    previous: E2BTemplateStatus | None
    build: BuildProgress | None
    now: datetime
    problem: Problem | None = None
    """A failed E2B call: retried later, the spec is not to blame."""
    spec_error: str | None = None
    """Why the spec cannot be built: the user has to change it."""
    ignored: tuple[str, ...] = ()
    """Fields the backend cannot honour (capabilities.unhonoured): the build goes on, and
    condition FieldsIgnored names them."""


@dataclass(frozen=True)
class TemplatePlan:
    action: Action
    status: E2BTemplateStatus


def decide_template(obs: TemplateObservation) -> TemplatePlan:
    """Start a build when the spec changed, poll a running one, report the outcome."""
    prev = obs.previous or E2BTemplateStatus()
    build = obs.build
    if obs.spec_error:
        return _plan("none", obs, prev, "Failed", "InvalidSpec", obs.spec_error)
    if obs.problem and obs.problem.stalled:
        return _plan("none", obs, prev, "Failed", obs.problem.reason, obs.problem.message)
    if prev.spec_hash != obs.spec_hash or not prev.build_id:
        return _plan("build", obs, prev, "Building", "BuildStarting", "starting an E2B build")
    if obs.problem:
        return _plan("poll", obs, prev, "Building", obs.problem.reason, obs.problem.message)
    if build is None or build.status in ("waiting", "building"):
        state = build.status if build else "waiting"
        return _plan("poll", obs, prev, "Building", "BuildInProgress", f"E2B build {state}")
    if build.status == "ready":
        return _plan("none", obs, prev, "Ready", "BuildReady", f"built as {build.template_id}")
    message = (build.reason or "the E2B build failed").splitlines()[0][:500]
    return _plan("none", obs, prev, "Failed", "BuildFailed", f"{message}; see buildLogTail")


def _plan(
    action: Action,
    obs: TemplateObservation,
    prev: E2BTemplateStatus,
    phase: Literal["Building", "Ready", "Failed"],
    reason: str,
    message: str,
) -> TemplatePlan:
    ready = phase == "Ready"
    failed = phase == "Failed"
    wants = [
        Want("Ready", ready, reason, message),
        Want("Reconciling", phase == "Building", reason if not ready else "Built", message),
        Want("Stalled", failed, reason if failed else "NotStalled", message if failed else ""),
        Want("Built", ready, reason, message),
    ]
    if obs.ignored:
        wants.append(Want("FieldsIgnored", True, "UnsupportedByBackend", "; ".join(obs.ignored)))
    build = obs.build
    logs = list(build.logs[-LOG_TAIL:]) if build and failed else []
    rejected = obs.spec_error is not None
    status = E2BTemplateStatus(
        phase=phase,
        observed_generation=obs.generation,
        conditions=merge(prev.conditions, wants, generation=obs.generation, now=obs.now),
        template_id=(build.template_id if build else None) or prev.template_id,
        build_id=None if rejected else (build.build_id if build else None) or prev.build_id,
        spec_hash=obs.spec_hash if rejected else prev.spec_hash,
        credentials_hash=prev.credentials_hash,
        built_at=obs.now if ready and prev.phase != "Ready" else prev.built_at,
        build_log_tail=[line[:2048] for line in logs],
        message=message,
    )
    return TemplatePlan(action, status)
