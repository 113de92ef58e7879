"""kopf wiring, and nothing else: `kopf run -m e2b_operator.handlers.main`.

Each decorator hands over to the module named after its kind. Reconciliation is
level-triggered: one daemon per object loops observe -> decide -> act, woken by watch
events and by its own timers (health checks, keep-alive, build polling).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import kopf

from ..api import DEPLOYMENTS_PLURAL, EXECUTIONS_PLURAL, GROUP, TEMPLATES_PLURAL, VERSION
from ..sandboxes.backend import SandboxBackend
from ..sandboxes.templates import TemplateBuilds
from . import deployments, executions, orphans, templates
from .context import Services, TemplateEntry, template_entry
from .kube import Kube
from .lister import SandboxLister
from .logs import quiet_routine_events
from .settings import Settings, connection_from_env

TEMPLATES = (GROUP, VERSION, TEMPLATES_PLURAL)
DEPLOYMENTS = (GROUP, VERSION, DEPLOYMENTS_PLURAL)


@kopf.on.startup()
async def startup(*, settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.scanning.disabled = True
    settings.posting.level = logging.INFO
    settings.networking.request_timeout = 60
    settings.watching.server_timeout = 300
    logging.getLogger("httpx").setLevel(logging.WARNING)
    quiet_routine_events()
    kube = await Kube.connect()
    connection = await connection_from_env(kube)
    settings_ = Settings.from_env()
    services = Services(
        kube=kube,
        backend=SandboxBackend(connection),
        builds=TemplateBuilds(connection),
        settings=settings_,
        create_slots=asyncio.Semaphore(settings_.create_batch_max),
    )
    services.lister = SandboxLister(
        services.backend,
        period=services.settings.list_period_seconds,
        max_period=services.settings.list_max_period_seconds,
        changed=services.poke_deployment,
    )
    memo.services = services
    memo.tasks = [
        asyncio.create_task(services.lister.run()),
        asyncio.create_task(orphans.sweep_forever(services)),
    ]


@kopf.on.cleanup()
async def cleanup(*, memo: kopf.Memo, **_: Any) -> None:
    for task in memo.tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await memo.services.kube.close()


@kopf.on.probe(id="deployments")
async def probe(*, memo: kopf.Memo, **_: Any) -> int:
    return len(memo.services.deployments)


# -- E2BTemplate ------------------------------------------------------------------------------

TemplateIndex = kopf.Index[tuple[str | None, str], TemplateEntry]
DeploymentIndex = kopf.Index[tuple[str | None, str | None], tuple[str, str]]


@kopf.index(*TEMPLATES)
async def e2btemplates_by_name(
    *, namespace: str | None, name: str, spec: kopf.Spec, status: kopf.Status, **_: Any
) -> dict[tuple[str | None, str], TemplateEntry]:
    return {(namespace, name): template_entry(name, spec, status)}


@kopf.on.event(*TEMPLATES)
async def template_event(
    *,
    body: kopf.Body,
    memo: kopf.Memo,
    e2bdeployments_by_template: DeploymentIndex | None = None,
    **_: Any,
) -> None:
    services: Services = memo.services
    services.template_waker(body.metadata.uid).poke()
    assert e2bdeployments_by_template is not None  # kopf passes every index to every handler
    for _name, uid in e2bdeployments_by_template.get(
        (body.metadata.namespace, body.metadata.name), []
    ):
        services.poke_deployment(uid)


@kopf.daemon(*TEMPLATES, cancellation_backoff=10, cancellation_timeout=30)
async def template_daemon(
    *, body: kopf.Body, stopped: kopf.DaemonStopped, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    await templates.run(memo.services, body, stopped, logger)


@kopf.on.delete(*TEMPLATES)
async def template_delete(
    *,
    body: kopf.Body,
    memo: kopf.Memo,
    e2bdeployments_by_template: DeploymentIndex | None = None,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    assert e2bdeployments_by_template is not None
    users = [
        n
        for n, _ in e2bdeployments_by_template.get(
            (body.metadata.namespace, body.metadata.name), []
        )
    ]
    await templates.delete(memo.services, body, users, logger)
    memo.services.template_wakers.pop(body.metadata.uid, None)


# -- E2BDeployment ----------------------------------------------------------------------------


@kopf.index(*DEPLOYMENTS)
async def e2bdeployments_by_template(
    *, namespace: str | None, name: str, uid: str, spec: kopf.Spec, **_: Any
) -> dict[tuple[str | None, str | None], tuple[str, str]]:
    return {(namespace, (spec.get("templateRef") or {}).get("name")): (name, uid)}


@kopf.on.event(*DEPLOYMENTS)
async def deployment_event(*, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    state = memo.services.deployment_state(body.metadata.uid)
    if body.metadata.get("generation") != state.generation:
        state.waker.poke()


@kopf.daemon(*DEPLOYMENTS, cancellation_backoff=10, cancellation_timeout=30)
async def deployment_daemon(
    *,
    body: kopf.Body,
    stopped: kopf.DaemonStopped,
    memo: kopf.Memo,
    e2btemplates_by_name: TemplateIndex | None = None,
    **_: Any,
) -> None:
    assert e2btemplates_by_name is not None
    memo.services.templates = e2btemplates_by_name
    await deployments.run(memo.services, body, stopped)


@kopf.on.delete(*DEPLOYMENTS)
async def deployment_delete(*, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await deployments.delete(memo.services, body)


# -- E2BExecution -----------------------------------------------------------------------------

EXECUTIONS = (GROUP, VERSION, EXECUTIONS_PLURAL)


@kopf.daemon(*EXECUTIONS, cancellation_backoff=10, cancellation_timeout=30)
async def execution_daemon(
    *,
    body: kopf.Body,
    stopped: kopf.DaemonStopped,
    memo: kopf.Memo,
    e2btemplates_by_name: TemplateIndex | None = None,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    assert e2btemplates_by_name is not None
    memo.services.templates = e2btemplates_by_name
    await executions.run(memo.services, body, stopped, logger)
