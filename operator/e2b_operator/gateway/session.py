"""Per-request access: the bearer token, its user, its rights in the namespace, its client.

`allow(...)` is the dependency every route declares with the permissions it needs.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from kubernetes_asyncio import client

from e2b_operator.toolkit import TemplateDeployer
from e2b_operator.toolkit.cluster import Objects
from e2b_operator.toolkit.registry import Templates

from .auth import Caller, Permission, Reviews
from .clients import Clients
from .errors import ApiProblem
from .settings import Settings

NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DEPLOY_READY_SECONDS = 300.0


@dataclass
class Gateway:
    """What one process shares between requests."""

    settings: Settings
    clients: Clients
    reviews: Reviews


_gateway: Gateway | None = None
_starting: asyncio.Lock | None = None


async def current_gateway() -> Gateway:
    """The process's Gateway, created on first use from the environment."""
    global _gateway, _starting
    if _gateway is None:
        _starting = _starting or asyncio.Lock()
        async with _starting:
            if _gateway is None:
                settings = Settings.from_env()
                clients = await Clients.load(settings.kubeconfig)
                reviews = Reviews(clients.own, settings.review_cache_seconds)
                _gateway = Gateway(settings, clients, reviews)
    return _gateway


async def close_gateway() -> None:
    """Close the process's clients (at shutdown)."""
    global _gateway
    if _gateway is not None:
        await _gateway.clients.close()
        _gateway = None


@dataclass
class Session:
    """An authorized caller in one namespace, with a client that carries the caller's token."""

    caller: Caller
    namespace: str
    api: client.ApiClient

    def objects(self) -> Objects:
        return Objects(self.api, self.namespace)

    def templates(self) -> Templates:
        return Templates(self.objects())

    def deployer(self) -> TemplateDeployer:
        return TemplateDeployer(
            namespace=self.namespace, api_client=self.api, ready_timeout=DEPLOY_READY_SECONDS
        )


def bearer_token(request: Request) -> str:
    """The token of `Authorization: Bearer <token>`; 401 without one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiProblem(
            401,
            "Unauthorized",
            "no bearer token: send 'Authorization: Bearer <token>' with a Kubernetes token"
            " (e.g. from `kubectl create token <serviceaccount>`)",
            headers={"WWW-Authenticate": 'Bearer realm="kubernetes"'},
        )
    return token.strip()


def allow(*needs: Permission) -> Any:
    """A dependency giving the route a Session once the caller may do all of `needs`."""

    async def session(
        request: Request,
        namespace: Annotated[
            str | None, Query(description="namespace (default: the gateway's)")
        ] = None,
    ) -> Session:
        token = bearer_token(request)
        gateway = await current_gateway()
        caller = await gateway.reviews.authenticate(token)
        ns = namespace or gateway.settings.namespace
        if not NAMESPACE.match(ns):
            raise ApiProblem(
                422, "Invalid", f"namespace: {ns!r} is not a valid namespace name", "namespace"
            )
        await gateway.reviews.authorize(caller, ns, *needs)
        return Session(caller, ns, gateway.clients.for_token(token))

    return Depends(session)
