"""Health checks of a deployment's sandboxes: the template's healthCheck hook, run in each."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection
from datetime import datetime, timedelta

from .. import metrics
from ..api import E2BDeploymentSpec, E2BDeploymentStatus, E2BTemplateSpec
from ..reconcile.health import Health, failure_message, probe_command, read_probe
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
    secrets: Collection[str] = (),
) -> dict[str, Health]:
    """The tallies after checking every running sandbox whose next check is due."""
    interval = spec.health_check.interval_seconds
    due = [
        s.sandbox_id
        for s in sandboxes
        if s.state == "running" and health.get(s.sandbox_id, Health()).due(now, interval)
    ]
    results = await gather_bounded(
        [
            check_once(backend, spec, tspec, sid, health.get(sid, Health()), now, secrets)
            for sid in due
        ],
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
    secrets: Collection[str] = (),
) -> Health | None:
    """Run the hook once (and see whether the main script exited): the new tally, or None if
    the sandbox could not be reached (its health is unknown, not bad). No hook passes.
    ``secrets``: values masked in the message."""
    check = tspec.hooks.health_check if tspec.hooks else None
    timeout = spec.health_check.timeout_seconds
    try:
        outcome = await backend.run(sandbox_id, probe_command(check), timeout=timeout)
    except BackendError as exc:
        log.info("health of sandbox %s unknown: %s", sandbox_id, exc.message)
        metrics.health_check(None)
        return None
    outcome, main_exit = read_probe(outcome)
    metrics.health_check(outcome.ok)
    message = ""
    if not outcome.ok:
        message = failure_message(outcome, timeout, secrets)
        log.info("health check failed in sandbox %s: %s", sandbox_id, message)
    if main_exit is not None and previous.main_exit is None:
        log.info("main script of sandbox %s exited with code %d", sandbox_id, main_exit)
    return previous.record(outcome.ok, message, now, main_exit)


def from_status(
    previous: E2BDeploymentStatus | None, now: datetime, interval: float
) -> dict[str, Health]:
    """After a restart: each sandbox's last known health from status, so nothing flaps. A
    healthy one was checked within an interval before: its next check is spread over the
    coming interval (by its ID), not all of them at once in the first pass, which would hold
    up the creates a restart mid-scale still has to make. Others are checked at once."""
    return {
        e.sandbox_id: Health(
            healthy=e.healthy,
            failures=e.consecutive_failures,
            since=e.last_health_transition_time,
            message=e.message or "",
            passed=e.phase in ("Running", "Unhealthy"),
            main_exit=e.main_exit_code,
            checked_at=_spread(e.sandbox_id, now, interval) if e.phase == "Running" else None,
        )
        for e in (previous.sandboxes if previous else [])
        if e.healthy is not None
    }


def _spread(sandbox_id: str, now: datetime, interval: float) -> datetime:
    """A past check time that makes the next check due within ``interval`` from ``now``."""
    fraction = int(hashlib.sha256(sandbox_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return now - timedelta(seconds=interval * fraction)
