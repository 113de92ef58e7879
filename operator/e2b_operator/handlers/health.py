"""Health checks of a deployment's sandboxes: the template's healthCheck hook, run in each."""

from __future__ import annotations

import logging
from datetime import datetime

from ..api import E2BDeploymentSpec, E2BDeploymentStatus, E2BTemplateSpec
from ..reconcile.health import Health
from ..reconcile.observed import ObservedSandbox
from ..sandboxes.backend import SandboxBackend
from ..sandboxes.errors import BackendError
from .concurrency import gather_bounded

log = logging.getLogger(__name__)

CONCURRENCY = 16


async def check_due(
    backend: SandboxBackend,
    spec: E2BDeploymentSpec,
    tspec: E2BTemplateSpec,
    sandboxes: list[ObservedSandbox],
    health: dict[str, Health],
    now: datetime,
) -> dict[str, Health]:
    """The tallies after checking every running sandbox whose next check is due."""
    interval = spec.health_check.interval_seconds
    due = [
        s.sandbox_id
        for s in sandboxes
        if s.state == "running" and health.get(s.sandbox_id, Health()).due(now, interval)
    ]
    results = await gather_bounded(
        [check_once(backend, spec, tspec, sid, health.get(sid, Health()), now) for sid in due],
        CONCURRENCY,
    )
    updated = dict(health)
    for sid, result in zip(due, results, strict=True):
        if isinstance(result, Health):
            updated[sid] = result
    return updated


async def check_once(
    backend: SandboxBackend,
    spec: E2BDeploymentSpec,
    tspec: E2BTemplateSpec,
    sandbox_id: str,
    previous: Health,
    now: datetime,
) -> Health | None:
    """Run the hook once: the new tally, or None if the sandbox could not be reached (its
    health is unknown, not bad). No hook means healthy once running."""
    check = tspec.hooks.health_check if tspec.hooks else None
    if not check:
        return previous.record(True, "", now)
    try:
        outcome = await backend.run(sandbox_id, check, timeout=spec.health_check.timeout_seconds)
    except BackendError as exc:
        log.info("health of sandbox %s unknown: %s", sandbox_id, exc.message)
        return None
    message = ""
    if not outcome.ok:
        detail = (outcome.stderr or outcome.stdout or outcome.error)[-512:].strip()
        message = f"health check exited {outcome.exit_code}: {detail}"
        log.info("health check failed in sandbox %s: %s", sandbox_id, message)
    return previous.record(outcome.ok, message, now)


def from_status(previous: E2BDeploymentStatus | None) -> dict[str, Health]:
    """After a restart: each sandbox's last known health from status, so nothing flaps."""
    return {
        e.sandbox_id: Health(
            healthy=e.healthy,
            failures=e.consecutive_failures,
            since=e.last_health_transition_time,
            message=e.message or "",
            passed=e.phase in ("Running", "Unhealthy"),
        )
        for e in (previous.sandboxes if previous else [])
        if e.healthy is not None
    }
