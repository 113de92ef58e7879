"""E2BDeployment: one reconcile loop per object, observe -> decide -> act -> status."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from ..api import E2BDeploymentSpec, E2BDeploymentStatus, E2BTemplateSpec
from ..api.layout import APP_DIR, INSTANCE_CONFIG, MAIN_LOG, main_shell
from ..reconcile import deployment as rd
from ..reconcile.backoff import backoff, reported
from ..reconcile.conditions import Want, merge
from ..reconcile.config import config_problem, instance_config
from ..reconcile.expectations import Expectations
from ..reconcile.hashing import stable_hash
from ..reconcile.health import STARTUP_FIRST_DELAY, Health
from ..reconcile.observed import (
    MANAGED_BY,
    META_DEPLOYMENT,
    META_DEPLOYMENT_UID,
    META_INDEX,
    META_MANAGED_BY,
    META_NAMESPACE,
    META_TEMPLATE_HASH,
    ObservedSandbox,
    Problem,
)
from ..sandboxes.errors import BackendError
from . import health
from .concurrency import gather_bounded
from .context import Services
from .kube import SecretMissing
from .status import StatusWriter
from .wakeups import Waker

log = logging.getLogger(__name__)

PLURAL = "e2bdeployments"


@dataclass
class LoopState:
    """What one deployment's loop remembers between iterations (lost on restart by design:
    sandboxes are re-listed from E2B, health is re-read from status)."""

    waker: Waker = field(default_factory=Waker)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    expectations: Expectations = field(default_factory=Expectations)
    health: dict[str, Health] = field(default_factory=dict)
    nonces: dict[int, str] = field(default_factory=dict)
    creating: set[int] = field(default_factory=set)
    ramp: int | None = None
    """After failed creates: how many to try at once (doubling); None: the whole budget."""
    failures: int = 0
    generation: int | None = None
    replicas: int | None = None
    progress_key: tuple[int | None, ...] = ()
    progress_at: datetime | None = None
    seeded: bool = False
    writer: StatusWriter | None = None


@dataclass(frozen=True)
class Target:
    """Identity of the deployment being reconciled."""

    namespace: str
    name: str
    uid: str


async def run(services: Services, body: kopf.Body, stopped: Any, logger: Any) -> None:
    """The daemon: reconcile now, then whenever poked or a timer is due, until stopped."""
    target = Target(body.metadata.namespace, body.metadata.name, body.metadata.uid)
    state = services.deployment_state(target.uid)
    state.writer = StatusWriter(services.kube, PLURAL, target.namespace, target.name)
    while not stopped:
        async with state.lock:
            if stopped:
                break
            delay = await reconcile(services, target, body, state, logger)
        await state.waker.sleep(delay, stopped)


async def reconcile(
    services: Services, target: Target, body: kopf.Body, state: LoopState, logger: Any
) -> float:
    """One pass; returns seconds until the next pass is due."""
    now = datetime.now(UTC)
    generation = body.metadata.get("generation") or 0
    state.generation = generation
    assert state.writer is not None
    previous = _previous_status(state.writer.known(body))
    try:
        spec = E2BDeploymentSpec.from_wire(body.spec)
    except ValidationError as exc:
        await state.writer.write(body, _invalid_status(previous, generation, str(exc), now))
        return 300.0
    if not state.seeded:
        state.health.update(health.from_status(previous))
        state.seeded = True
    if state.replicas is not None and state.replicas != spec.replicas:
        kopf.info(body, reason="Scaled", message=f"scaled from {state.replicas} to {spec.replicas}")
    state.replicas = spec.replicas
    view, tspec = services.template_view(target.namespace, spec.template_ref.name)
    problem: Problem | None = None
    envs: dict[str, str] = {}
    if (why := config_problem(spec)) is not None:
        problem = Problem("InvalidConfig", why, stalled=True)
    try:
        envs = await _resolve_env(services, target.namespace, spec)
    except SecretMissing as exc:
        problem = Problem(
            "SecretNotFound", f"{exc}; create it or fix spec.env[].valueFrom", stalled=True
        )
    sandboxes: list[ObservedSandbox] = []
    try:
        assert services.lister is not None
        listed = await services.lister.sandboxes(target.uid)
        sandboxes = state.expectations.apply(listed, time.monotonic())
        if tspec is not None and not spec.paused:
            await health.check_due(services.backend, spec, tspec, sandboxes, state.health, now)
    except BackendError as exc:
        log.warning("[%s/%s] %s: %s", target.namespace, target.name, exc.reason, exc.message)
        if not reported(state.failures, exc.transient):
            state.failures += 1
            return backoff(state.failures, services.settings.error_backoff_max_seconds)
        problem = Problem(exc.reason, exc.message, stalled=not exc.transient)
        sandboxes = _from_status(previous)  # keep reporting what was last seen
    wanted = _wanted_hashes(spec, view, envs_spec=spec.wire().get("env", []))
    obs = rd.Observation(
        generation=generation,
        name=target.name,
        spec=spec,
        template=view,
        wanted_hashes=wanted,
        sandboxes=tuple(sandboxes),
        health=dict(state.health),
        previous=previous,
        now=now,
        has_health_check=bool(tspec and tspec.hooks and tspec.hooks.health_check),
        problem=problem,
        creating=frozenset(state.creating),
        progress_since=state.progress_at,
    )
    plan = rd.decide(obs)
    if _progressed(state, plan.status, now):
        plan = rd.decide(replace(obs, progress_since=None))
    if await state.writer.write(body, plan.status):
        _announce(body, previous, plan.status)
    if problem is not None:
        state.failures += 1
        if problem.stalled:
            return services.settings.error_backoff_max_seconds
        return backoff(state.failures, services.settings.error_backoff_max_seconds)
    state.failures = 0
    if plan.idle:
        return _next_due(spec, state, sandboxes, now)
    try:
        await _act(services, target, spec, tspec, view, envs, wanted, plan, state, body, logger)
    except BackendError as exc:
        state.failures += 1
        kopf.warn(body, reason=exc.reason, message=exc.message)
        return backoff(state.failures, services.settings.error_backoff_max_seconds)
    if plan.create or plan.delete or plan.pause or plan.resume:
        return 0.0  # look again at once: the next step of the rollout may be ready
    return _next_due(spec, state, sandboxes, now)  # keep-alives alone change nothing to see


# -- acting -----------------------------------------------------------------------------------


async def _act(
    services: Services,
    target: Target,
    spec: E2BDeploymentSpec,
    tspec: E2BTemplateSpec | None,
    view: rd.TemplateView | None,
    envs: dict[str, str],
    wanted: dict[int, str],
    plan: rd.Plan,
    state: LoopState,
    body: kopf.Body,
    logger: Any,
) -> None:
    backend = services.backend
    cleanup = tspec.hooks.cleanup if tspec and tspec.hooks else None
    for s in plan.pause:
        await backend.pause(s.sandbox_id)
        kopf.info(body, reason="Paused", message=f"paused sandbox {s.sandbox_id}")
    for s in plan.resume:
        await backend.resume(s.sandbox_id, spec.timeout_seconds)
        kopf.info(body, reason="Resumed", message=f"resumed sandbox {s.sandbox_id}")
    for s in plan.keepalive:
        await backend.set_timeout(s.sandbox_id, spec.timeout_seconds)
    await gather_bounded(
        [_delete(services, s, why, cleanup, state, body) for s, why in plan.delete],
        limit=services.settings.create_batch_max,
    )
    if plan.create and view is not None and view.template_id and tspec is not None:
        budget = services.settings.create_batch_max
        batch = plan.create[: state.ramp or budget]
        results = await gather_bounded(
            [
                _create(services, target, spec, tspec, view.template_id, envs, i, wanted[i], state)
                for i in batch
            ],
            limit=services.settings.create_batch_max,
        )
        created = sum(1 for r in results if r is True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if created:
            kopf.info(body, reason="Created", message=f"created {created} sandbox(es)")
        # All at once within the budget; after a failure, one, then doubling while they succeed.
        if errors:
            state.ramp = 1
        elif state.ramp is not None:
            state.ramp = None if state.ramp * 2 >= budget else state.ramp * 2
        if errors:
            raise (
                errors[0]
                if isinstance(errors[0], BackendError)
                else BackendError("CreateFailed", str(errors[0]))
            )


async def _create(
    services: Services,
    target: Target,
    spec: E2BDeploymentSpec,
    tspec: E2BTemplateSpec,
    template_id: str,
    envs: dict[str, str],
    index: int,
    wanted_hash: str,
    state: LoopState,
) -> bool:
    nonce = state.nonces.setdefault(index, secrets.token_hex(4))
    key = f"{target.uid}-{index}-{wanted_hash}-{nonce}"
    metadata = {
        META_MANAGED_BY: MANAGED_BY,
        META_NAMESPACE: target.namespace,
        META_DEPLOYMENT: target.name,
        META_DEPLOYMENT_UID: target.uid,
        META_TEMPLATE_HASH: wanted_hash,
        META_INDEX: str(index),
    }
    instance_env = {
        **envs,
        "E2B_DEPLOYMENT": target.name,
        "E2B_NAMESPACE": target.namespace,
        "E2B_INSTANCE_INDEX": str(index),
    }
    state.creating.add(index)
    try:
        sandbox_id = await services.backend.create(
            template_id,
            metadata=metadata,
            envs=instance_env,
            timeout=spec.timeout_seconds,
            idempotency_key=key,
            internet=tspec.requirements.network_access,
        )
        now = datetime.now(UTC)
        record = ObservedSandbox(sandbox_id, "running", metadata, started_at=now)
        state.expectations.expect_created(record, time.monotonic())
        state.nonces.pop(index, None)
        config = json.dumps(instance_config(spec, index))
        try:
            await services.backend.write_files(sandbox_id, {str(INSTANCE_CONFIG): config})
            await services.backend.start(
                sandbox_id,
                main_shell(tspec.requirements.runtime.value, config),
                envs=instance_env,
                cwd=str(APP_DIR),
                log=str(MAIN_LOG),
            )
        except BackendError:
            # A sandbox without its config or main script must not pass for a ready one.
            with contextlib.suppress(BackendError):
                await services.backend.kill(sandbox_id)
            state.expectations.expect_deleted(sandbox_id, time.monotonic())
            raise
        await health.check_once(services.backend, spec, tspec, sandbox_id, state.health, now)
        return True
    finally:
        state.creating.discard(index)


async def _delete(
    services: Services,
    s: ObservedSandbox,
    why: str,
    cleanup: str | None,
    state: LoopState,
    body: kopf.Body,
) -> None:
    if cleanup and s.state == "running":
        # The sandbox goes anyway; a failed cleanup must not keep it alive.
        with contextlib.suppress(BackendError):
            await services.backend.run(
                s.sandbox_id, cleanup, timeout=services.settings.cleanup_timeout_seconds
            )
    await services.backend.kill(s.sandbox_id)
    state.expectations.expect_deleted(s.sandbox_id, time.monotonic())
    state.health.pop(s.sandbox_id, None)
    reason = "Killed" if why in ("ScaledDown", "DeploymentDeleted", "Unmanaged") else "Replaced"
    kopf.info(
        body, reason=reason, message=f"killed sandbox {s.sandbox_id} (instance {s.index}): {why}"
    )


def _announce(
    body: kopf.Body, previous: E2BDeploymentStatus | None, status: E2BDeploymentStatus
) -> None:
    """A Warning event when the deployment becomes Stalled or Degraded (not on every pass)."""
    before = {c.type: c.status for c in (previous.conditions if previous else [])}
    for c in status.conditions:
        if (
            c.type in ("Stalled", "Degraded")
            and c.status == "True"
            and before.get(c.type) != "True"
        ):
            kopf.warn(body, reason=c.reason, message=c.message)


async def delete(services: Services, body: kopf.Body, logger: Any) -> None:
    """Deletion: run the cleanup hook in every sandbox, kill them all, then let go."""
    uid = body.metadata.uid
    state = services.deployment_state(uid)
    async with state.lock:
        tspec = None
        try:
            spec = E2BDeploymentSpec.from_wire(body.spec)
            _, tspec = services.template_view(body.metadata.namespace, spec.template_ref.name)
        except ValidationError:
            pass
        cleanup = tspec.hooks.cleanup if tspec and tspec.hooks else None
        try:
            sandboxes = await services.backend.list({META_DEPLOYMENT_UID: uid})
            await gather_bounded(
                [
                    _delete(services, s, "DeploymentDeleted", cleanup, state, body)
                    for s in sandboxes
                ],
                limit=services.settings.create_batch_max,
            )
            left = await services.backend.list({META_DEPLOYMENT_UID: uid})
        except BackendError as exc:
            raise kopf.TemporaryError(
                f"cannot clean up sandboxes yet: {exc.message}", delay=5
            ) from exc
        if left:
            raise kopf.TemporaryError(f"{len(left)} sandbox(es) still exist; retrying", delay=2)
    services.forget_deployment(uid)


# -- observing --------------------------------------------------------------------------------


def _progressed(state: LoopState, status: E2BDeploymentStatus, now: datetime) -> bool:
    """Note progress (a new generation, or a change in ready or updated-and-ready sandboxes,
    so replacing sandboxes that never become ready is no progress); True if there was."""
    key = (status.observed_generation, status.ready_replicas, status.updated_ready_replicas)
    if key == state.progress_key and state.progress_at is not None:
        return False
    state.progress_key, state.progress_at = key, now
    return True


def _from_status(previous: E2BDeploymentStatus | None) -> list[ObservedSandbox]:
    """The sandboxes the last status listed, for when E2B cannot be asked."""
    return [
        ObservedSandbox(
            e.sandbox_id,
            "paused" if e.phase == "Paused" else "running",
            {META_INDEX: str(e.index), META_TEMPLATE_HASH: e.template_hash or ""},
            started_at=e.started_at,
        )
        for e in (previous.sandboxes if previous else [])
        if e.phase != "Terminating"
    ]


async def _resolve_env(
    services: Services, namespace: str, spec: E2BDeploymentSpec
) -> dict[str, str]:
    env: dict[str, str] = {}
    for var in spec.env:
        if var.value_from is not None:
            ref = var.value_from.secret_key_ref
            env[var.name] = await services.kube.secret_value(namespace, ref.name, ref.key)
        else:
            env[var.name] = var.value or ""
    return env


def _wanted_hashes(
    spec: E2BDeploymentSpec, view: rd.TemplateView | None, envs_spec: list[Any]
) -> dict[int, str]:
    """Per slot: what a current sandbox is made from (secret values excluded, references not)."""
    base = view.spec_hash if view else None
    return {
        i: stable_hash(base, envs_spec, instance_config(spec, i), length=10)
        for i in range(spec.replicas)
    }


def _previous_status(status: dict[str, Any]) -> E2BDeploymentStatus | None:
    try:
        return E2BDeploymentStatus.from_wire(status) if status else None
    except ValidationError:
        return None


def _next_due(
    spec: E2BDeploymentSpec, state: LoopState, sandboxes: list[ObservedSandbox], now: datetime
) -> float:
    if spec.paused:
        return 300.0
    interval = float(spec.health_check.interval_seconds)
    waits = [interval]
    for s in sandboxes:
        h = state.health.get(s.sandbox_id)
        if h and h.checked_at:
            waits.append(h.wait(now, interval))
        if s.end_at:
            left = (s.end_at - now).total_seconds() - spec.timeout_seconds * rd.KEEPALIVE_FRACTION
            waits.append(left)
    return max(min(waits), STARTUP_FIRST_DELAY)


def _invalid_status(
    previous: E2BDeploymentStatus | None, generation: int, error: str, now: datetime
) -> E2BDeploymentStatus:
    """Status for a spec the models reject (only possible if the CRD lags the operator)."""
    status = previous or E2BDeploymentStatus()
    message = f"spec is invalid: {error}"[:32768]
    wants = [
        Want("Ready", False, "InvalidSpec", message),
        Want("Reconciling", False, "InvalidSpec", message),
        Want("Stalled", True, "InvalidSpec", message),
    ]
    return status.model_copy(
        update={
            "observed_generation": generation,
            "phase": "Failed",
            "conditions": merge(status.conditions, wants, generation=generation, now=now),
        }
    )
