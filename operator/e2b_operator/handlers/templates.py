"""E2BTemplate: one loop per object that builds the spec into an E2B template and follows it."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from .. import metrics
from ..api import TEMPLATES_PLURAL, E2BTemplateSpec, E2BTemplateStatus
from ..reconcile.backoff import backoff, reported
from ..reconcile.capabilities import unhonoured
from ..reconcile.observed import BuildProgress, Problem
from ..reconcile.recipe import RecipeError, recipe, spec_hash
from ..reconcile.template import TemplateObservation, decide_template
from ..sandboxes.errors import BackendError
from .context import Services, namespace_of
from .credentials import CredentialError
from .kube import KubeRetry
from .status import StatusWriter

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
IDLE_SECONDS = 3600.0
KIND = "E2BTemplate"
IN_USE_POLL_SECONDS = 0.5
IN_USE_WAIT_SECONDS = 60.0
"""A deletion waiting for a template's users re-enters kopf this often (quietly)."""
IN_USE = "still in use by"


@dataclass
class TemplateLoop:
    writer: StatusWriter
    failures: int = 0
    kube_retry: KubeRetry = field(default_factory=KubeRetry)


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

        async def one_pass() -> float:
            with metrics.reconcile_pass(KIND):
                return await reconcile(services, body, loop)

        delay = await loop.kube_retry.run(one_pass, f"{meta.namespace}/{meta.name}")
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
    try:
        services = await services.for_object(namespace_of(body), body.spec)
    except CredentialError as exc:
        return await _unusable(services, body, loop, obs, exc)
    problem: Problem | None = None
    build: BuildProgress | None = None
    template_id, build_id = previous.template_id, previous.build_id
    if build_id and template_id and previous.spec_hash == obs.spec_hash:
        try:
            previous = await _in_account(services, previous)
            if previous.spec_hash == obs.spec_hash:
                build = await services.builds.poll(template_id, build_id, name)
        except BackendError as exc:
            log.warning("[%s/%s] %s: %s", meta.namespace, meta.name, exc.reason, exc.message)
            metrics.reconcile_error(KIND, exc.reason)
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
            metrics.reconcile_error(KIND, exc.reason)
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
                    "credentials_hash": services.account_id or None,
                }
            )
            kopf.info(body, reason="BuildStarted", message=f"E2B build {started.build_id} started")
    if await loop.writer.write(body, status):
        _announce(body, previous, status)
        metrics.template_build(previous, status, now)
    if problem is not None:
        loop.failures += 1
        return backoff(loop.failures, services.settings.error_backoff_max_seconds)
    loop.failures = 0
    return POLL_SECONDS if status.phase == "Building" else IDLE_SECONDS


async def _in_account(services: Services, previous: E2BTemplateStatus) -> E2BTemplateStatus:
    """The status with its build checked against the E2B account in use: recorded when
    these credentials reach the template (a rotated key of the same team), cleared for a
    rebuild when they do not (a key of another team)."""
    account = services.account_id
    if not account or previous.credentials_hash == account or not previous.template_id:
        return previous
    if await services.builds.visible(previous.template_id):
        return previous.model_copy(update={"credentials_hash": account})
    log.info("template %s is not in E2B account %s: rebuilding", previous.template_id, account)
    return previous.model_copy(update={"spec_hash": None, "credentials_hash": account})


async def _unusable(
    services: Services,
    body: kopf.Body,
    loop: TemplateLoop,
    obs: TemplateObservation,
    exc: CredentialError,
) -> float:
    """The template's credentials cannot be used: say so (Stalled) unless it is a passing
    apiserver failure, and look again after a backoff."""
    loop.failures += 1
    if not exc.transient:
        problem = Problem(exc.reason, exc.message, stalled=True)
        await loop.writer.write(body, decide_template(replace(obs, problem=problem)).status)
    return backoff(loop.failures, services.settings.error_backoff_max_seconds)


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


async def delete(
    services: Services, body: kopf.Body, users: Callable[[], list[str]], retry: int
) -> None:
    """Wait while deployments use the template (said once: a status message and an event,
    then quietly; the index is live, so their going away ends the wait); then delete it
    from E2B."""
    meta = body.metadata
    if users():
        if retry == 0:
            message = (
                f"in use by E2BDeployment(s) {', '.join(sorted(users()))}; delete them or "
                "change their templateRef, and the template will then be deleted"
            )
            kopf.warn(body, reason="InUse", message=message)
            await services.kube.patch_status(
                TEMPLATES_PLURAL,
                namespace_of(body),
                meta.name,
                {"phase": "Deleting", "message": message},
            )
        deadline = time.monotonic() + IN_USE_WAIT_SECONDS
        while users() and time.monotonic() < deadline:
            await asyncio.sleep(IN_USE_POLL_SECONDS)
        if users():
            # Logged by kopf at DEBUG (handlers/logs.py): the wait was announced once.
            raise kopf.TemporaryError(f"{IN_USE} {', '.join(sorted(users()))}", delay=1)
    template_id = (body.get("status") or {}).get("templateID")
    if template_id:
        try:
            services = await services.for_object(namespace_of(body), body.spec, remembered=True)
        except CredentialError as exc:
            if exc.transient:
                raise kopf.TemporaryError(exc.message, delay=5) from exc
            message = f"{exc.message}. E2B template {template_id} was left in E2B"
            kopf.warn(body, reason=exc.reason, message=message)
            return
        try:
            await services.builds.delete(template_id)
        except BackendError as exc:
            raise kopf.TemporaryError(
                f"cannot delete E2B template: {exc.message}", delay=10
            ) from exc
