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

from .. import metrics
from ..api import DEPLOYMENTS_PLURAL, EXECUTIONS_PLURAL, GROUP, TEMPLATES_PLURAL, VERSION
from ..sandboxes.backend import SandboxBackend
from ..sandboxes.connection import Connection
from ..sandboxes.pacer import Pacer
from ..sandboxes.templates import TemplateBuilds
from . import deployments, executions, leader, orphans, templates
from .accounts import Account, Accounts
from .context import Services, TemplateEntry, template_entry
from .credentials import CredentialStore
from .diffbase import MemoryDiffBase
from .kube import Kube
from .lister import SandboxLister
from .logs import quiet_routine_events
from .settings import Settings, connection_from_env, default_key_secret

TEMPLATES = (GROUP, VERSION, TEMPLATES_PLURAL)
DEPLOYMENTS = (GROUP, VERSION, DEPLOYMENTS_PLURAL)
STOP_SECONDS = 2.0
"""A deployment loop still in a pass this long after it was told to stop (the operator
stopping, the object deleted) is cancelled: what it left half-done is picked up by the next
pass or operator, as after a kill (10 s before: most of `make dev`'s stop). A template's
keeps 10 s: cutting a build's start short would start the build again."""


@kopf.on.startup()
async def startup(*, settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = MemoryDiffBase()
    settings.scanning.disabled = True
    settings.posting.level = logging.INFO
    settings.networking.request_timeout = 60
    settings.watching.server_timeout = 300
    logging.getLogger("httpx").setLevel(logging.WARNING)
    quiet_routine_events()
    kube = await Kube.connect()
    settings_ = Settings.from_env()
    try:  # a standby serves /metrics too (e2b_operator_leader 0)
        memo.metrics_server = metrics.serve(settings_.metrics_port, settings_.metrics_address)
    except OSError as exc:
        raise kopf.PermanentError(
            f"cannot serve metrics on {settings_.metrics_address}:{settings_.metrics_port} "
            f"({exc}); set E2B_OPERATOR_METRICS_PORT to a free port, or 0 for none"
        ) from exc
    # With E2B_OPERATOR_LEASE set, a standby waits here: kopf starts no watch until we lead.
    memo.leader = await leader.elect(kube.api)
    metrics.LEADER.set(1)

    def account(conn: Connection) -> Account:
        """An E2B account's backend (its own pacer: E2B's limits are per team), template
        builds and listing."""
        pacer = Pacer(settings_.rates, creates_in_flight=settings_.create_batch_max)
        pacer.on_recovered(lambda: services.backend_recovered())
        pacer.on_throttled(lambda uid: services.poke_deployment(uid))
        backend = SandboxBackend(conn, pacer)
        lister = SandboxLister(
            backend,
            period=settings_.list_period_seconds,
            max_period=settings_.list_max_period_seconds,
            changed=lambda uid: services.poke_deployment(uid),
            recovered=lambda: services.wake_all(),
        )
        return Account(conn.fingerprint, backend, TemplateBuilds(conn), lister)

    accounts = Accounts(CredentialStore(kube, connection_from_env(), default_key_secret()), account)
    default = await accounts.start(lambda: services.backend_recovered())
    services = Services(
        kube=kube,
        backend=default.backend,
        builds=default.builds,
        lister=default.lister,
        settings=settings_,
        accounts=accounts,
        account_id=default.id,
    )
    memo.services = services
    kube.on_recovered(services.backend_recovered)  # loops that backed off look again now
    metrics.count_creates(
        in_flight=lambda: sum(a.backend.pacer.in_flight for a in accounts.all()),
        waiting=lambda: sum(a.backend.pacer.waiting for a in accounts.all()),
    )
    memo.tasks = [asyncio.create_task(orphans.sweep_forever(services))]


@kopf.on.cleanup()
async def cleanup(*, memo: kopf.Memo, **_: Any) -> None:
    await deployments.stop(memo.services)
    for task in memo.tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await asyncio.to_thread(metrics.stop, memo.get("metrics_server"))
    await memo.services.accounts.close()
    if memo.leader is not None:  # kopf has stopped every daemon: hand over now
        await memo.leader.release()
    await memo.services.kube.close()


@kopf.on.probe(id="deployments")
async def probe(*, memo: kopf.Memo, **_: Any) -> int:
    return len(memo.services.deployments)


# -- E2BTemplate ------------------------------------------------------------------------------

TemplateIndex = kopf.Index[tuple[str | None, str], TemplateEntry]
DeploymentIndex = kopf.Index[tuple[str | None, str | None], tuple[str, str]]


@kopf.index(*TEMPLATES)
async def e2btemplates_by_name(
    *,
    namespace: str | None,
    name: str,
    uid: str,
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    **_: Any,
) -> dict[tuple[str | None, str], TemplateEntry]:
    deleting = meta.get("deletionTimestamp") is not None
    return {(namespace, name): template_entry(name, spec, status, uid, deleting=deleting)}


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
    with metrics.loop("E2BTemplate"):
        await templates.run(memo.services, body, stopped, logger)


@kopf.on.delete(*TEMPLATES)
async def template_delete(
    *,
    body: kopf.Body,
    memo: kopf.Memo,
    retry: int,
    e2bdeployments_by_template: DeploymentIndex | None = None,
    **_: Any,
) -> None:
    assert e2bdeployments_by_template is not None
    index = e2bdeployments_by_template
    key = (body.metadata.namespace, body.metadata.name)

    def users() -> list[str]:
        return [name for name, _ in index.get(key, [])]

    await templates.delete(memo.services, body, users, retry)
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


@kopf.daemon(*DEPLOYMENTS, cancellation_backoff=STOP_SECONDS, cancellation_timeout=30)
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
    with metrics.loop("E2BDeployment"):
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
    with metrics.loop("E2BExecution"):
        await executions.run(memo.services, body, stopped, logger)
