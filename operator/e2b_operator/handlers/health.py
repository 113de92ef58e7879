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
) -> None:
    """Check every running sandbox whose interval has passed; forget sandboxes that are gone."""
    interval = spec.health_check.interval_seconds
    due = [
        s
        for s in sandboxes
        if s.state == "running" and health.get(s.sandbox_id, Health()).due(now, interval)
    ]
    await gather_bounded(
        [check_once(backend, spec, tspec, s.sandbox_id, health, now) for s in due], CONCURRENCY
    )
    known = {s.sandbox_id for s in sandboxes}
    for sid in list(health):
        if sid not in known:
            del health[sid]


async def check_once(
    backend: SandboxBackend,
    spec: E2BDeploymentSpec,
    tspec: E2BTemplateSpec,
    sandbox_id: str,
    health: dict[str, Health],
    now: datetime,
) -> None:
    """Run the hook once and record the outcome; no hook means healthy once running."""
    check = tspec.hooks.health_check if tspec.hooks else None
    previous = health.get(sandbox_id, Health())
    if not check:
        health[sandbox_id] = previous.record(True, "", now)
        return
    try:
        outcome = await backend.run(sandbox_id, check, timeout=spec.health_check.timeout_seconds)
    except BackendError as exc:
        log.info("health of sandbox %s unknown: %s", sandbox_id, exc.message)
        return  # the sandbox could not be reached: its health is unknown, not bad
    message = ""
    if not outcome.ok:
        detail = (outcome.stderr or outcome.stdout or outcome.error)[-512:].strip()
        message = f"health check exited {outcome.exit_code}: {detail}"
        log.info("health check failed in sandbox %s: %s", sandbox_id, message)
    health[sandbox_id] = previous.record(outcome.ok, message, now)


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
