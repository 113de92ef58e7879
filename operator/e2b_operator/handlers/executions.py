"""E2BExecution: a daemon per object runs the main script once, then applies the TTL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
from pydantic import ValidationError

from ..api import (
    DEPLOYMENTS_PLURAL,
    EXECUTIONS_PLURAL,
    Credentials,
    E2BExecutionSpec,
    E2BExecutionStatus,
)
from ..api.layout import APP_DIR
from ..reconcile import credentials
from ..reconcile import execution as rx
from ..reconcile.observed import MANAGED_BY, META_MANAGED_BY, META_NAMESPACE, CommandOutcome
from ..sandboxes.errors import BackendError
from .context import Services, namespace_of
from .credentials import CredentialError
from .live_output import LiveOutput
from .status import StatusWriter

FINISHED = ("Succeeded", "Failed")
META_EXECUTION = "k8s-execution"
META_EXECUTION_UID = "k8s-execution-uid"
"""Metadata of an ephemeral execution sandbox (it has no deployment)."""
PENDING_POLL_SECONDS = 2.0
KILL_TIMEOUT_SECONDS = 30.0
UNBUFFERED = {"PYTHONUNBUFFERED": "1"}
"""Python scripts flush every line, so their output streams live."""


class Run:
    """One execution object being driven: its identity, spec and last written status."""

    def __init__(self, services: Services, body: kopf.Body, spec: E2BExecutionSpec) -> None:
        self.services = services
        self.body = body
        self.spec = spec
        self.namespace = namespace_of(body)
        self.name = body.metadata.name
        self.uid = body.metadata.uid
        self.generation = body.metadata.get("generation") or 0
        self.status = _previous(body)
        self.writer = StatusWriter(services.kube, EXECUTIONS_PLURAL, self.namespace, self.name)

    async def write(self, phase: str, reason: str, message: str, **fields: Any) -> None:
        now = datetime.now(UTC)
        self.status = rx.progress_status(
            self.status, self.spec, phase, reason, message, self.generation, now, **fields
        )
        await self._patch()

    async def finish(self, outcome: CommandOutcome, **fields: Any) -> None:
        assert self.status is not None
        now = datetime.now(UTC)
        self.status = rx.outcome_status(
            self.status, self.spec, outcome, self.generation, now, **fields
        )
        await self._patch()

    async def _patch(self) -> None:
        assert self.status is not None
        await self.writer.write(self.body, self.status)


async def run(services: Services, body: kopf.Body, stopped: Any, logger: Any) -> None:
    """The daemon: run the script if it has not run, then delete the object after its TTL."""
    try:
        spec = E2BExecutionSpec.from_wire(body.spec)
    except ValidationError as exc:
        logger.error(f"invalid E2BExecution spec: {exc}")
        return
    job = Run(services, body, spec)
    phase = job.status.phase if job.status else None
    if phase == "Running":
        await _interrupted(job)
    elif phase not in FINISHED:
        await _execute(job, stopped, logger)
    await _expire(job, stopped)


async def _execute(job: Run, stopped: Any, logger: Any) -> None:
    pick = await _wait_for_target(job, stopped)
    if pick is None:
        return  # stopped (the object is being deleted or the operator is stopping)
    if pick.final:
        await job.write("Failed", pick.reason, pick.message)
        kopf.warn(job.body, reason=pick.reason, message=pick.message)
        return
    tspec = job.services.template_view(job.namespace, await _template_name(job))[1]
    runtime = tspec.requirements.runtime.value if tspec else "python3"
    sandbox_id = pick.sandbox_id
    try:
        if pick.template_id:
            sandbox_id = await job.services.backend.create(
                pick.template_id,
                metadata={
                    META_MANAGED_BY: MANAGED_BY,
                    META_NAMESPACE: job.namespace,
                    META_EXECUTION: job.name,
                    META_EXECUTION_UID: job.uid,
                },
                envs={"E2B_EXECUTION": job.name, "E2B_NAMESPACE": job.namespace},
                timeout=int(rx.command_timeout(job.spec)) + 60,
                idempotency_key=f"{job.uid}-execution",
                internet=tspec.requirements.network_access if tspec else True,
                turn=job.uid,  # its own turn beside the deployments' creates
            )
        assert sandbox_id is not None
        await job.write(
            "Running",
            "Running",
            f"running the main script in sandbox {sandbox_id}",
            sandbox_id=sandbox_id,
            ephemeral=bool(pick.template_id),
            start_time=datetime.now(UTC),
        )
        running = (job.status.message if job.status else None) or ""
        live = LiveOutput(lambda **out: job.write("Running", "Running", running, **out))
        publisher = asyncio.create_task(live.publish())
        try:
            outcome = await _until_deleted(
                job.services.backend.run(
                    sandbox_id,
                    rx.command(runtime, job.spec, tspec.hooks if tspec else None),
                    timeout=rx.command_timeout(job.spec),
                    envs=UNBUFFERED,
                    cwd=str(APP_DIR),
                    on_stdout=live.collector("stdout"),
                    on_stderr=live.collector("stderr"),
                ),
                stopped,
            )
        finally:
            publisher.cancel()
            await asyncio.gather(publisher, return_exceptions=True)
        if outcome is None:
            return  # deleted (e.g. `kubectl e2b logs -f` ended) or the operator is stopping
        await job.finish(outcome, **live.fields())
    except BackendError as exc:
        reason = "Timeout" if exc.reason == "BackendTimeout" else exc.reason
        await job.write("Failed", reason, exc.message)
        kopf.warn(job.body, reason=reason, message=exc.message)
    finally:
        if pick.template_id and sandbox_id:
            await _kill(job, sandbox_id, logger)
    assert job.status is not None
    event = kopf.info if job.status.phase == "Succeeded" else kopf.warn
    event(job.body, reason=job.status.reason or "Finished", message=job.status.message or "")


async def _until_deleted(run: Awaitable[CommandOutcome], stopped: Any) -> CommandOutcome | None:
    """The command's outcome, or None when the execution is deleted first: then the command
    is cancelled, which kills it in the sandbox. An operator shutdown lets it finish (kopf
    cancels the daemon after its cancellation_timeout)."""
    task = asyncio.ensure_future(run)
    deleted = asyncio.ensure_future(_deletion(stopped))
    try:
        await asyncio.wait({task, deleted}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        deleted.cancel()
        if not task.done():
            task.cancel()
        await asyncio.gather(task, deleted, return_exceptions=True)
    return None if task.cancelled() else task.result()


async def _deletion(stopped: Any) -> None:
    """Returns when the daemon stops because its object was deleted; otherwise never."""
    await stopped.wait()
    if not (stopped.reason and stopped.reason & kopf.DaemonStoppingReason.RESOURCE_DELETED):
        await asyncio.Event().wait()


async def _wait_for_target(job: Run, stopped: Any) -> rx.Pick | None:
    """Poll until there is a sandbox to run in, a reason to fail, or the daemon stops."""
    created = _created(job.body)
    while not stopped:
        pick = await _pick(job)
        if not pick.waiting and not pick.final:
            pick = await _in_account(job, pick)
        if not pick.waiting:
            return pick
        waited = (datetime.now(UTC) - created).total_seconds()
        if waited > rx.PENDING_LIMIT_SECONDS:
            return rx.Pick(
                reason=pick.reason,
                message=f"gave up after {rx.PENDING_LIMIT_SECONDS}s {pick.message}",
                final=True,
            )
        if not job.status or job.status.message != pick.message:
            await job.write("Pending", pick.reason, pick.message)
        await stopped.wait(PENDING_POLL_SECONDS)
    return None


async def _pick(job: Run) -> rx.Pick:
    if job.spec.template_ref is not None:
        name = job.spec.template_ref.name
        return rx.pick_template(job.services.template_view(job.namespace, name)[0], name)
    assert job.spec.deployment_ref is not None
    name = job.spec.deployment_ref.name
    deployment = await _deployment(job, name)
    return rx.pick_in_deployment(
        deployment, name, job.spec.sandbox_id, rx.accepted_phases(job.spec)
    )


async def _in_account(job: Run, pick: rx.Pick) -> rx.Pick:
    """The pick once the execution acts as its E2B account (job.services scoped to it): a
    final failure when its credentials differ from its target's, waiting while they cannot
    be used (the Secret may come later) or the template is not usable with them yet."""
    spec = job.spec
    if spec.template_ref is not None:
        target = f"E2BTemplate {spec.template_ref.name}"
        tspec = job.services.template_view(job.namespace, spec.template_ref.name)[1]
        theirs = tspec.credentials if tspec else None
    else:
        assert spec.deployment_ref is not None
        target = f"E2BDeployment {spec.deployment_ref.name}"
        deployment = await _deployment(job, spec.deployment_ref.name) or {}
        raw = (deployment.get("spec") or {}).get("credentials")
        try:
            theirs = Credentials.from_wire(raw) if raw else None
        except ValidationError:
            return rx.Pick(reason="InvalidDeployment", message=f"{target}: invalid spec")
    problem = credentials.mismatch("E2BExecution", spec.credentials, target, theirs)
    if problem is not None:
        return rx.Pick(reason=problem.reason, message=problem.message, final=True)
    try:
        job.services = await job.services.for_object(job.namespace, job.body.spec)
    except CredentialError as exc:
        return rx.Pick(reason=exc.reason, message=exc.message)
    if spec.template_ref is not None:
        view = job.services.usable_template(job.namespace, spec.template_ref.name)[0]
        return rx.pick_template(view, spec.template_ref.name)
    return pick


async def _template_name(job: Run) -> str:
    if job.spec.template_ref is not None:
        return job.spec.template_ref.name
    assert job.spec.deployment_ref is not None
    deployment = await _deployment(job, job.spec.deployment_ref.name) or {}
    return deployment.get("spec", {}).get("templateRef", {}).get("name", "")


async def _deployment(job: Run, name: str) -> dict[str, Any] | None:
    return await job.services.kube.get(DEPLOYMENTS_PLURAL, job.namespace, name)


async def _interrupted(job: Run) -> None:
    """The operator restarted during a run: its outcome is lost, so the execution fails."""
    assert job.status is not None
    if job.status.ephemeral and job.status.sandbox_id:
        with contextlib.suppress(CredentialError):  # unusable now: the sandbox times out
            job.services = await job.services.for_object(job.namespace, job.body.spec)
            await _kill(job, job.status.sandbox_id, None)
    await job.write(
        "Failed",
        "Interrupted",
        "the operator restarted while the main script ran; create a new E2BExecution",
    )


async def _kill(job: Run, sandbox_id: str, logger: Any) -> None:
    """Kill an ephemeral sandbox, even while the daemon is being cancelled."""
    try:
        await asyncio.wait_for(
            asyncio.shield(job.services.backend.kill(sandbox_id)), KILL_TIMEOUT_SECONDS
        )
    except (BackendError, TimeoutError) as exc:
        if logger:
            logger.warning(f"could not kill execution sandbox {sandbox_id}: {exc}")


async def _expire(job: Run, stopped: Any) -> None:
    """Delete the object ttlSecondsAfterFinished after completion."""
    ttl = job.spec.ttl_seconds_after_finished
    if ttl is None or job.status is None or job.status.completion_time is None:
        return
    due = job.status.completion_time + timedelta(seconds=ttl)
    delay = (due - datetime.now(UTC)).total_seconds()
    if delay > 0:
        await stopped.wait(delay)
        if stopped:
            return
    await job.services.kube.delete(EXECUTIONS_PLURAL, job.namespace, job.name)


def _previous(body: kopf.Body) -> E2BExecutionStatus | None:
    try:
        return E2BExecutionStatus.from_wire(body.status) if body.status else None
    except ValidationError:
        return None


def _created(body: kopf.Body) -> datetime:
    stamp = body.metadata.get("creationTimestamp")
    if not stamp:
        return datetime.now(UTC)
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
