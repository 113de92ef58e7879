"""E2BDeployment: one loop per object: observe -> decide -> act -> write status.

Every decision is reconcile.deployment.decide, a reducer over (observation, memory); this
module only observes (the shared listing, due health checks, Secrets), carries out the plan,
writes the status and posts the events it names.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import secrets
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
from pydantic import ValidationError

from .. import metrics
from ..api import DEPLOYMENTS_PLURAL, E2BDeploymentSpec, E2BDeploymentStatus, E2BTemplateSpec
from ..api.layout import APP_DIR, INSTANCE_CONFIG, MAIN_LOG, main_service
from ..reconcile import credentials
from ..reconcile import deployment as rd
from ..reconcile.conditions import Want, merge
from ..reconcile.config import config_problem, instance_config, slot_hashes
from ..reconcile.health import Health
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
from ..sandboxes.pacer import PACED, Abandoned
from . import health
from .concurrency import gather_bounded
from .context import Services, namespace_of
from .credentials import CredentialError
from .deployment_state import LoopState
from .kube import SecretMissing, SecretNotText, unavailable
from .status import StatusWriter

log = logging.getLogger(__name__)

INVALID_RECHECK_SECONDS = 300.0
KIND = "E2BDeployment"


@dataclass(frozen=True)
class Target:
    """Identity of the deployment being reconciled."""

    namespace: str
    name: str
    uid: str


async def run(services: Services, body: kopf.Body, stopped: kopf.DaemonStopped) -> None:
    """The daemon: reconcile now, then whenever poked or a timer is due, until stopped."""
    target = Target(namespace_of(body), body.metadata.name, body.metadata.uid)
    state = services.deployment_state(target.uid)
    state.writer = StatusWriter(services.kube, DEPLOYMENTS_PLURAL, target.namespace, target.name)
    while not stopped:
        async with state.lock:
            if stopped:
                break
            if state.recovered:
                state.recovered = False
                state.memory = rd.recovered(state.memory)

            async def one_pass() -> float:
                with metrics.reconcile_pass(KIND):
                    account = await _account(services, target, body)
                    return await reconcile(account, target, body, state)

            delay = await state.kube_retry.run(one_pass, f"{target.namespace}/{target.name}")
        if state.memory.failures:
            due = datetime.now(UTC) + timedelta(seconds=delay)
            log.info(
                "[%s/%s] backing off after %d failed pass(es): next pass at %s unless woken",
                target.namespace,
                target.name,
                state.memory.failures,
                due.isoformat(),
            )
        await state.waker.sleep(delay, stopped)


async def reconcile(services: Services, target: Target, body: kopf.Body, state: LoopState) -> float:
    """One pass; returns seconds until the next pass is due."""
    assert state.writer is not None
    observed = await observe(services, target, body, state)
    if observed is None:
        return INVALID_RECHECK_SECONDS
    obs, inputs = observed
    plan = rd.decide(obs, state.memory)
    state.memory = plan.memory
    metrics.observe_deployment(target.namespace, target.name, obs.spec.replicas, plan.status)
    _abandon_unwanted(obs, state)
    if not plan.write:
        return plan.wait
    try:
        await state.writer.write(body, plan.status)
    except Exception as exc:
        if plan.create and unavailable(exc):
            await _create_anyway(services, target, body, obs, inputs, plan, state)
        raise
    for event in plan.events:
        services.post(body, event)
    if plan.idle:
        return plan.wait
    try:
        await act(services, target, body, obs, inputs, plan, state)
    except BackendError as exc:
        metrics.reconcile_error(KIND, exc.reason)
        services.post(body, rd.Event("Warning", exc.reason, exc.message))
        state.memory, wait = rd.after_failure(
            state.memory, services.settings.error_backoff_max_seconds
        )
        return wait
    return plan.wait


# -- observing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Inputs:
    """What acting needs besides the plan: resolved env (Secret values) and the template."""

    envs: dict[str, str] = field(repr=False)
    tspec: E2BTemplateSpec | None
    secrets: frozenset[str] = field(default=frozenset(), repr=False)
    """The values taken from Secrets (masked in hook output)."""


async def observe(
    services: Services, target: Target, body: kopf.Body, state: LoopState
) -> tuple[rd.Observation, Inputs] | None:
    """Everything the decision needs; None (after writing why) if the spec cannot be read."""
    assert state.writer is not None and services.lister is not None
    now = datetime.now(UTC)
    generation = body.metadata.get("generation") or 0
    state.generation = generation
    previous = _previous_status(state.writer.known(body))
    try:
        spec = E2BDeploymentSpec.from_wire(body.spec)
    except ValidationError as exc:
        await state.writer.write(body, _invalid_status(previous, generation, str(exc), now))
        return None
    if not state.seeded:
        interval = spec.health_check.interval_seconds
        state.health.update(health.from_status(previous, now, interval))
        state.seeded = True
    view, tspec = services.usable_template(target.namespace, spec.template_ref.name)
    problem: Problem | None = None
    if tspec is not None:
        problem = credentials.mismatch(
            "E2BDeployment",
            spec.credentials,
            f"E2BTemplate {spec.template_ref.name}",
            tspec.credentials,
        )
    envs: dict[str, str] = {}
    secrets: frozenset[str] = frozenset()
    if (why := config_problem(spec)) is not None:
        problem = Problem("InvalidConfig", why, stalled=True)
    try:
        envs, secrets = await _resolve_env(services, target.namespace, spec)
    except SecretMissing as exc:
        problem = Problem(
            "SecretNotFound", f"{exc}; create it or fix spec.env[].valueFrom", stalled=True
        )
    except SecretNotText as exc:
        problem = Problem("SecretNotText", str(exc), stalled=True)
    backend_error: Problem | None = None
    creating = frozenset(state.creating)
    try:
        listed = await services.lister.sandboxes(target.uid)
        # The creates in flight, taken with the sandboxes (no await between): a create that
        # ends while this pass checks health is in one or the other, never missing from
        # both (its slot was created again, then the extra killed as a Duplicate).
        creating = frozenset(state.creating)
        sandboxes = [
            s
            for s in state.expectations.apply(listed, time.monotonic(), services.lister.listed_at)
            if s.sandbox_id not in state.setting_up
        ]
        known = {s.sandbox_id for s in sandboxes}
        state.health = {sid: h for sid, h in state.health.items() if sid in known}
        if tspec is not None and not spec.paused:
            state.health = await health.check_due(
                services.backend, spec, tspec, sandboxes, state.health, now, secrets
            )
    except BackendError as exc:
        log.warning("[%s/%s] %s: %s", target.namespace, target.name, exc.reason, exc.message)
        metrics.reconcile_error(KIND, exc.reason)
        backend_error = Problem(exc.reason, exc.message, stalled=not exc.transient)
        sandboxes = _from_status(previous)  # keep reporting what was last seen
    return rd.Observation(
        generation=generation,
        name=target.name,
        spec=spec,
        template=view,
        wanted_hashes=_wanted_hashes(spec, view, envs_spec=spec.wire().get("env", [])),
        sandboxes=tuple(sandboxes),
        health=dict(state.health),
        previous=previous,
        now=now,
        has_health_check=bool(tspec and tspec.hooks and tspec.hooks.health_check),
        problem=problem,
        backend_error=backend_error,
        creating=creating,
        throttle=services.backend.pacer.throttle(target.uid),
        create_budget=services.settings.create_batch_max,
        backoff_cap=services.settings.error_backoff_max_seconds,
    ), Inputs(envs, tspec, secrets)


# -- acting ---------------------------------------------------------------------------------


async def act(
    services: Services,
    target: Target,
    body: kopf.Body,
    obs: rd.Observation,
    inputs: Inputs,
    plan: rd.Plan,
    state: LoopState,
) -> None:
    """Carry out the plan (creates go on in the background); raises the first BackendError."""
    backend, spec, tspec = services.backend, obs.spec, inputs.tspec
    cleanup = tspec.hooks.cleanup if tspec and tspec.hooks else None
    for s in plan.pause:
        await backend.pause(s.sandbox_id)
        state.expectations.expect_state(s.sandbox_id, "paused", time.monotonic())
        services.post(body, rd.Event("Normal", "Paused", f"paused sandbox {s.sandbox_id}"))
    for s in plan.resume:
        await backend.resume(s.sandbox_id, spec.timeout_seconds)
        state.expectations.expect_state(s.sandbox_id, "running", time.monotonic())
        services.post(body, rd.Event("Normal", "Resumed", f"resumed sandbox {s.sandbox_id}"))
    for s in plan.keepalive:
        await backend.set_timeout(s.sandbox_id, spec.timeout_seconds)
        state.memory = rd.after_keepalive(state.memory, [s.sandbox_id], datetime.now(UTC))
    await gather_bounded(
        [_delete(services, s, why, cleanup, state, body) for s, why in plan.delete],
        limit=services.settings.create_batch_max,
    )
    template_id = obs.template.template_id if obs.template else None
    if not plan.create or template_id is None or tspec is None:
        return
    for index in plan.create:
        # In the background, so one slow create never holds up the others or the loop;
        # each finished create wakes the loop, which fills the freed room at once.
        state.creating.add(index)
        create = _create(services, target, spec, tspec, template_id, inputs, index, obs, state)
        task = asyncio.create_task(_create_in_background(services, target, body, state, create))
        state.tasks.add(task)
        task.add_done_callback(state.tasks.discard)


async def _create_anyway(
    services: Services,
    target: Target,
    body: kopf.Body,
    obs: rd.Observation,
    inputs: Inputs,
    plan: rd.Plan,
    state: LoopState,
) -> None:
    """The apiserver did not take the status (restarting, its etcd away) but E2B is there:
    the creates start now (a sandbox is found again by its metadata, with or without a
    status); deletes, pauses and resumes wait for the status that announces them."""
    creates = dataclasses.replace(plan, delete=[], pause=[], resume=[], keepalive=[])
    await act(services, target, body, obs, inputs, creates, state)


async def _create_in_background(
    services: Services,
    target: Target,
    body: kopf.Body,
    state: LoopState,
    create: Coroutine[Any, Any, tuple[str, Health | None]],
) -> None:
    """One create (its E2B call within the operator-wide budget); records the outcome and
    wakes the loop."""
    settings = services.settings
    try:
        sandbox_id, first = await create
    except Abandoned:
        state.waker.poke()
        return
    except BackendError as exc:
        services.post(body, rd.Event("Warning", exc.reason, exc.message))
        failed = True
    else:
        if first is not None:
            state.health[sandbox_id] = first
        if services.lister is not None:
            # The next listing confirms it, or shows it was lost meanwhile: look then.
            services.lister.wake_after_next(target.uid)
        services.post(body, rd.Event("Normal", "Created", f"created sandbox {sandbox_id}"))
        failed = False
    state.memory = rd.after_create(
        state.memory,
        failed=failed,
        budget=settings.create_batch_max,
        now=datetime.now(UTC),
        cap=settings.error_backoff_max_seconds,
    )
    state.waker.poke()


async def _create(
    services: Services,
    target: Target,
    spec: E2BDeploymentSpec,
    tspec: E2BTemplateSpec,
    template_id: str,
    inputs: Inputs,
    index: int,
    obs: rd.Observation,
    state: LoopState,
) -> tuple[str, Health | None]:
    """Create slot `index`'s sandbox, give it its config, start its main script and check its
    health once: (sandbox id, first health or None if unknown). The slot is in
    state.creating, and its new sandbox in state.setting_up, until this ends."""
    wanted_hash = obs.wanted_hashes[index]
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
        **inputs.envs,
        "E2B_DEPLOYMENT": target.name,
        "E2B_NAMESPACE": target.namespace,
        "E2B_INSTANCE_INDEX": str(index),
    }
    state.creating.add(index)
    abandon = asyncio.Event()
    state.abandon[index] = (wanted_hash, abandon)
    sandbox_id = ""
    try:
        while True:
            # Waits its turn among the deployments, E2B's rate and cap (the pacer); after a
            # 429 the pacer slows down, and the same create (same key) waits its turn again.
            try:
                sandbox_id = await services.backend.create(
                    template_id,
                    metadata=metadata,
                    envs=instance_env,
                    timeout=spec.timeout_seconds,
                    idempotency_key=key,
                    internet=tspec.requirements.network_access,
                    turn=target.uid,
                    abandon=abandon,
                )
                break
            except BackendError as exc:
                if exc.reason not in PACED:
                    raise
        now = datetime.now(UTC)
        record = ObservedSandbox(sandbox_id, "running", metadata, started_at=now)
        state.expectations.expect_created(record, time.monotonic())
        state.setting_up.add(sandbox_id)
        state.nonces.pop(index, None)
        config = json.dumps(instance_config(spec, index))
        try:
            await services.backend.write_files(sandbox_id, {str(INSTANCE_CONFIG): config})
            await services.backend.start(
                sandbox_id,
                main_service(tspec.requirements.runtime.value, config),
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
        first = await health.check_once(
            services.backend, spec, tspec, sandbox_id, Health(), now, inputs.secrets
        )
        return sandbox_id, first
    finally:
        state.creating.discard(index)
        state.setting_up.discard(sandbox_id)
        state.abandon.pop(index, None)


def _abandon_unwanted(obs: rd.Observation, state: LoopState) -> None:
    """Give up the waiting creates of slots no longer wanted as they were (scaled down,
    paused, or a new hash): they would make sandboxes only to delete them."""
    for index, (wanted, abandon) in state.abandon.items():
        if obs.spec.paused or obs.wanted_hashes.get(index) != wanted:
            abandon.set()


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
    reason = "Killed" if why in ("ScaledDown", "DeploymentDeleted", "Unmanaged") else "Replaced"
    message = f"killed sandbox {s.sandbox_id} (instance {s.index}): {why}"
    services.post(body, rd.Event("Normal", reason, message))


async def stop(services: Services, wait: float = 1.0) -> None:
    """The operator is stopping: the creates still in flight are given up (the next operator
    finds their sandboxes by metadata), waiting ``wait`` s at most, not for the commands they
    run (a first health check) to be killed in their sandboxes."""
    tasks = [task for state in services.deployments.values() for task in state.tasks]
    for task in tasks:
        task.cancel()
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=wait)
        for task in pending:
            task.cancel()  # again: ends its wait for the command's kill


async def delete(services: Services, body: kopf.Body) -> None:
    """Deletion: run the cleanup hook in every sandbox, kill them all, then let go."""
    uid = body.metadata.uid
    state = services.deployment_state(uid)
    async with state.lock:
        # Creates still in flight would leave sandboxes behind: let them finish first
        # (those still waiting for their turn give up).
        for _, abandon in state.abandon.values():
            abandon.set()
        await asyncio.gather(*state.tasks, return_exceptions=True)
        try:
            services = await services.for_object(
                namespace_of(body), body.spec, user=uid, remembered=True
            )
        except CredentialError as exc:
            if exc.transient:
                raise kopf.TemporaryError(exc.message, delay=5) from exc
            message = (
                f"{exc.message}. Sandboxes of this deployment (if any) were not killed: "
                "they end at their E2B timeout"
            )
            services.post(body, rd.Event("Warning", exc.reason, message))
            services.forget_deployment(uid)
            return
        tspec = None
        try:
            spec = E2BDeploymentSpec.from_wire(body.spec)
            _, tspec = services.template_view(namespace_of(body), spec.template_ref.name)
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
    metrics.forget_deployment(namespace_of(body), body.metadata.name)


# -- observation helpers ---------------------------------------------------------------------


async def _account(services: Services, target: Target, body: kopf.Body) -> Services:
    """The services of the deployment's E2B account (its spec.credentials, read anew each
    pass); with unusable credentials, services whose listing reports why."""
    try:
        return await services.for_object(target.namespace, body.spec, user=target.uid)
    except CredentialError as exc:
        return services.without_account(exc)


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
) -> tuple[dict[str, str], frozenset[str]]:
    """The env values, and those of them taken from Secrets."""
    env: dict[str, str] = {}
    secrets: set[str] = set()
    for var in spec.env:
        if var.value_from is not None:
            ref = var.value_from.secret_key_ref
            env[var.name] = await services.kube.secret_value(namespace, ref.name, ref.key)
            secrets.add(env[var.name])
        else:
            env[var.name] = var.value or ""
    return env, frozenset(secrets)


def _wanted_hashes(
    spec: E2BDeploymentSpec, view: rd.TemplateView | None, envs_spec: list[Any]
) -> dict[int, str]:
    """Per slot: what a current sandbox is made from (secret values excluded, references not)."""
    return slot_hashes(spec, view.spec_hash if view else None, envs_spec)


def _previous_status(status: dict[str, Any]) -> E2BDeploymentStatus | None:
    try:
        return E2BDeploymentStatus.from_wire(status) if status else None
    except ValidationError:
        return None


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
