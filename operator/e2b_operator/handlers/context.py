"""Services shared by all handlers, kept in kopf's memo: clients, settings, loop states."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from ..api import E2BTemplateSpec, E2BTemplateStatus
from ..reconcile.deployment import Event, TemplateView
from ..reconcile.recipe import spec_hash
from ..sandboxes.backend import SandboxBackend
from ..sandboxes.templates import TemplateBuilds
from .deployment_state import LoopState
from .kube import Kube
from .lister import SandboxLister
from .settings import Settings
from .wakeups import Waker


def namespace_of(body: kopf.Body) -> str:
    """The namespace of one of our (namespaced) objects."""
    namespace = body.metadata.namespace
    if namespace is None:
        raise ValueError(f"{body.metadata.name}: a namespaced object without a namespace")
    return namespace


def post_event(body: kopf.Body, event: Event) -> None:
    """Post a Kubernetes event on the object (through kopf's event queue)."""
    kopf.event(body, type=event.type, reason=event.reason, message=event.message)


@dataclass(frozen=True)
class TemplateEntry:
    """What the template index keeps per E2BTemplate."""

    view: TemplateView
    spec: E2BTemplateSpec | None


@dataclass
class Services:
    kube: Kube
    backend: SandboxBackend
    builds: TemplateBuilds
    settings: Settings
    templates: Mapping[Any, Any] = field(default_factory=dict)
    """kopf's index of E2BTemplates: (namespace, name) -> TemplateEntry (set by handlers)."""
    lister: SandboxLister | None = None
    """The shared listing of sandboxes (set at start-up)."""
    post: Callable[[kopf.Body, Event], None] = post_event
    create_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(32))
    """Sandbox creates in flight across all deployments (E2B_OPERATOR_CREATE_BATCH_MAX)."""
    deployments: dict[str, LoopState] = field(default_factory=dict)
    template_wakers: dict[str, Waker] = field(default_factory=dict)

    def deployment_state(self, uid: str) -> LoopState:
        return self.deployments.setdefault(uid, LoopState())

    def poke_deployment(self, uid: str) -> None:
        """Wake a deployment's loop if it runs here."""
        state = self.deployments.get(uid)
        if state is not None:
            state.waker.poke()

    def forget_deployment(self, uid: str) -> None:
        self.deployments.pop(uid, None)

    def template_waker(self, uid: str) -> Waker:
        return self.template_wakers.setdefault(uid, Waker())

    def template_view(
        self, namespace: str, name: str
    ) -> tuple[TemplateView | None, E2BTemplateSpec | None]:
        """The named template as the index last saw it; (None, None) if it does not exist."""
        store = self.templates.get((namespace, name))
        entry: TemplateEntry | None = next(iter(store), None) if store else None
        return (entry.view, entry.spec) if entry else (None, None)


def template_entry(name: str, spec: Mapping[str, Any], status: Mapping[str, Any]) -> TemplateEntry:
    """Index value for one E2BTemplate body."""
    try:
        parsed: E2BTemplateSpec | None = E2BTemplateSpec.from_wire(spec)
    except ValueError:
        parsed = None
    try:
        st = E2BTemplateStatus.from_wire(status or {})
    except ValueError:
        st = E2BTemplateStatus()
    current = parsed is not None and st.spec_hash == spec_hash(parsed)
    ready = st.phase == "Ready" and current
    view = TemplateView(
        name=name,
        ready=ready,
        failed=st.phase == "Failed" and current,
        template_id=st.template_id,
        spec_hash=st.spec_hash if ready else None,
        message=st.message or "",
    )
    return TemplateEntry(view, parsed)
