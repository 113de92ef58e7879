"""E2BTemplate: one loop per object that builds the spec into an E2B template and follows it."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from ..api import TEMPLATES_PLURAL, E2BTemplateSpec, E2BTemplateStatus
from ..reconcile.backoff import backoff, reported
from ..reconcile.capabilities import unhonoured
from ..reconcile.observed import BuildProgress, Problem
from ..reconcile.recipe import RecipeError, recipe, spec_hash
from ..reconcile.template import TemplateObservation, decide_template
from ..sandboxes.errors import BackendError
from .context import Services, namespace_of
from .status import StatusWriter

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
IDLE_SECONDS = 3600.0


@dataclass
class TemplateLoop:
    writer: StatusWriter
    failures: int = 0


def e2b_name(namespace: str, name: str) -> str:
    """The E2B template name of an E2BTemplate: unique per namespace and name."""
    return re.sub(r"[^a-z0-9-]", "-", f"{namespace}-{name}".lower())


async def run(services: Services, body: kopf.Body, stopped: Any, logger: Any) -> None:
    """The daemon: build on spec changes, poll while building, sleep otherwise."""
    meta = body.metadata
    waker = services.template_waker(meta.uid)
    loop = TemplateLoop(
        StatusWriter(services.kube, TEMPLATES_PLURAL, namespace_of(body), meta.name)
    )
    while not stopped:
        delay = await reconcile(services, body, loop)
        await waker.sleep(delay, stopped)


async def reconcile(services: Services, body: kopf.Body, loop: TemplateLoop) -> float:
    """One pass; returns seconds until the next one is due."""
    meta = body.metadata
    name = e2b_name(namespace_of(body), meta.name)
    now = datetime.now(UTC)
    try:
        previous = E2BTemplateStatus.from_wire(loop.writer.known(body))
    except ValidationError:
        previous = E2BTemplateStatus()
    obs = TemplateObservation(meta.get("generation") or 0, "", previous, None, now)
    try:
        spec = E2BTemplateSpec.from_wire(body.spec)
        build_recipe = recipe(spec)
        ignored = unhonoured(spec)
        obs = TemplateObservation(
            obs.generation, spec_hash(spec), previous, None, now, ignored=ignored
        )
    except (ValidationError, RecipeError) as exc:
        obs = TemplateObservation(obs.generation, "", previous, None, now, spec_error=str(exc))
        await loop.writer.write(body, decide_template(obs).status)
        return IDLE_SECONDS
    problem: Problem | None = None
    build: BuildProgress | None = None
    if previous.build_id and previous.template_id and previous.spec_hash == obs.spec_hash:
        try:
            build = await services.builds.poll(previous.template_id, previous.build_id, name)
        except BackendError as exc:
            log.warning("[%s/%s] %s: %s", meta.namespace, meta.name, exc.reason, exc.message)
            if not reported(loop.failures, exc.transient):
                loop.failures += 1
                return backoff(loop.failures, services.settings.error_backoff_max_seconds)
            problem = Problem(exc.reason, exc.message, stalled=not exc.transient)
    obs = TemplateObservation(
        obs.generation, obs.spec_hash, previous, build, now, problem, ignored=ignored
    )
    plan = decide_template(obs)
    status = plan.status
    if plan.action == "build":
        try:
            started = await services.builds.start(name, build_recipe)
        except BackendError as exc:
            problem = Problem(exc.reason, exc.message, stalled=not exc.transient)
            obs = TemplateObservation(
                obs.generation, obs.spec_hash, previous, None, now, problem, ignored=ignored
            )
            status = decide_template(obs).status
        else:
            status = status.model_copy(
                update={
                    "spec_hash": obs.spec_hash,
                    "build_id": started.build_id,
                    "template_id": started.template_id,
                    "built_at": None,
                }
            )
            kopf.info(body, reason="BuildStarted", message=f"E2B build {started.build_id} started")
    if await loop.writer.write(body, status):
        _announce(body, previous, status)
    if problem is not None:
        loop.failures += 1
        return backoff(loop.failures, services.settings.error_backoff_max_seconds)
    loop.failures = 0
    return POLL_SECONDS if status.phase == "Building" else IDLE_SECONDS


def _announce(body: kopf.Body, previous: E2BTemplateStatus, status: E2BTemplateStatus) -> None:
    ignored = _condition_message(status, "FieldsIgnored")
    if ignored and ignored != _condition_message(previous, "FieldsIgnored"):
        kopf.warn(body, reason="FieldsIgnored", message=ignored)
    if status.phase == previous.phase:
        return
    if status.phase == "Ready":
        kopf.info(body, reason="Built", message=f"template built as {status.template_id}")
    elif status.phase == "Failed":
        kopf.warn(body, reason="BuildFailed", message=status.message or "build failed")


def _condition_message(status: E2BTemplateStatus, type_: str) -> str | None:
    return next((c.message for c in status.conditions if c.type == type_), None)


async def delete(services: Services, body: kopf.Body, users: list[str], logger: Any) -> None:
    """Refuse (and retry) while deployments use the template; then delete it from E2B."""
    meta = body.metadata
    if users:
        message = (
            f"in use by E2BDeployment(s) {', '.join(sorted(users))}; delete them or change "
            "their templateRef, and the template will then be deleted"
        )
        kopf.warn(body, reason="InUse", message=message)
        await services.kube.patch_status(
            TEMPLATES_PLURAL,
            namespace_of(body),
            meta.name,
            {"phase": "Deleting", "message": message},
        )
        raise kopf.TemporaryError(message, delay=5)
    template_id = (body.get("status") or {}).get("templateID")
    if template_id:
        try:
            await services.builds.delete(template_id)
        except BackendError as exc:
            raise kopf.TemporaryError(
                f"cannot delete E2B template: {exc.message}", delay=10
            ) from exc
