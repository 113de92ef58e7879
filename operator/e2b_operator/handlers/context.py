"""Services shared by all handlers, kept in kopf's memo: clients, settings, loop states."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import kopf
from pydantic import ValidationError

from ..api import Credentials, E2BTemplateSpec, E2BTemplateStatus
from ..reconcile import credentials
from ..reconcile.deployment import Event, TemplateView
from ..reconcile.recipe import spec_hash
from ..sandboxes.backend import SandboxBackend
from ..sandboxes.errors import BackendError
from ..sandboxes.templates import TemplateBuilds
from .accounts import Accounts
from .credentials import CredentialError
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
    uid: str = ""


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
    deployments: dict[str, LoopState] = field(default_factory=dict)
    template_wakers: dict[str, Waker] = field(default_factory=dict)
    accounts: Accounts | None = None
    """E2B accounts per credential (set at start-up; None: backend/builds/lister are fixed)."""
    account_id: str = ""
    """The account backend, builds and lister act as ("": not scoped to one)."""

    async def for_object(
        self,
        namespace: str,
        spec: Mapping[str, Any],
        *,
        user: str | None = None,
        remembered: bool = False,
    ) -> Services:
        """These services acting as the E2B account of an object's spec.credentials (read
        anew, so a changed Secret applies from this call on); CredentialError if they
        cannot be used. A spec whose credentials do not parse stays unscoped: its kind
        reports the invalid spec and stops before calling E2B."""
        if self.accounts is None:
            return self
        try:
            credentials = (
                Credentials.from_wire(spec["credentials"]) if spec.get("credentials") else None
            )
        except ValidationError:
            return self
        account = await self.accounts.resolve(
            namespace, credentials, user=user, remembered=remembered
        )
        return replace(
            self,
            backend=account.backend,
            builds=account.builds,
            lister=account.lister,
            account_id=account.id,
        )

    def without_account(self, error: CredentialError) -> Services:
        """These services for a deployment whose credentials cannot be used: its listing
        fails with the credentials' error (so its status says what to fix) and it acts on
        nothing."""
        failure = BackendError(error.reason, error.message, transient=error.transient)
        return replace(self, lister=SandboxLister.failing(self.backend, failure), account_id="")

    def deployment_state(self, uid: str) -> LoopState:
        return self.deployments.setdefault(uid, LoopState())

    def poke_deployment(self, uid: str) -> None:
        """Wake a deployment's loop if it runs here."""
        state = self.deployments.get(uid)
        if state is not None:
            state.waker.poke()

    def wake_all(self) -> None:
        """Wake every deployment loop (the listing works again after failing)."""
        for state in self.deployments.values():
            state.waker.poke()

    def backend_recovered(self) -> None:
        """A call succeeded after an outage (of E2B or the apiserver), or the operator's key
        became usable: cut every backoff short and look again now."""
        for state in self.deployments.values():
            state.recovered = True
            state.waker.poke()
        for waker in self.template_wakers.values():
            waker.poke()
        listers: list[SandboxLister | None] = [self.lister]
        if self.accounts is not None:
            listers = [a.lister for a in self.accounts.listing()]
        for lister in filter(None, listers):
            lister.poke()

    def forget_deployment(self, uid: str) -> None:
        self.deployments.pop(uid, None)
        if self.accounts is not None:
            self.accounts.release(uid)

    def template_waker(self, uid: str) -> Waker:
        return self.template_wakers.setdefault(uid, Waker())

    def _template_entry(self, namespace: str, name: str) -> TemplateEntry | None:
        store = self.templates.get((namespace, name))
        return next(iter(store), None) if store else None

    def template_view(
        self, namespace: str, name: str
    ) -> tuple[TemplateView | None, E2BTemplateSpec | None]:
        """The named template as the index last saw it; (None, None) if it does not exist."""
        entry = self._template_entry(namespace, name)
        return (entry.view, entry.spec) if entry else (None, None)

    def usable_template(
        self, namespace: str, name: str
    ) -> tuple[TemplateView | None, E2BTemplateSpec | None]:
        """The named template as this account can use it: not ready while its build is
        known usable only with another account, and then its loop is woken to check or
        rebuild it (after a Secret's key changed)."""
        entry = self._template_entry(namespace, name)
        if entry is None:
            return None, None
        view = credentials.usable(entry.view, self.account_id)
        if view is not None and view.ready != entry.view.ready and entry.uid:
            self.template_waker(entry.uid).poke()
        return view, entry.spec


def template_entry(
    name: str,
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    uid: str = "",
    *,
    deleting: bool = False,
) -> TemplateEntry:
    """Index value for one E2BTemplate body (``deleting``: it is marked for deletion)."""
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
        deleting=deleting,
        credentials_hash=st.credentials_hash,
    )
    return TemplateEntry(view, parsed, uid)
