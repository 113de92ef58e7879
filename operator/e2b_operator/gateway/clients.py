"""Kubernetes clients: the gateway's own (for reviews) and one per caller token.

Callers' requests reach the apiserver with the caller's own token, so the apiserver enforces
the caller's RBAC too, and the gateway needs no rights on e2b.dev objects.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict

from kubernetes_asyncio import client

from e2b_operator.toolkit.cluster import connect

MAX_CALLER_CLIENTS = 64
CLOSE_DELAY_SECONDS = 3900.0
"""An evicted caller client is closed after the longest request (an hour-long execution)."""


def token_key(token: str) -> str:
    """A cache key for a token that does not reveal it."""
    return hashlib.sha256(token.encode()).hexdigest()


def _close_later(api: client.ApiClient) -> None:
    asyncio.get_running_loop().create_task(api.close())


class Clients:
    """The gateway's ApiClient and a bounded pool of ApiClients carrying callers' tokens."""

    def __init__(self, own: client.ApiClient) -> None:
        self.own = own
        self._callers: OrderedDict[str, client.ApiClient] = OrderedDict()

    @classmethod
    async def load(cls, kubeconfig: str | None = None) -> Clients:
        """From the kubeconfig ($KUBECONFIG), or in-cluster credentials when there is none."""
        return cls(await connect(kubeconfig))

    def for_token(self, token: str) -> client.ApiClient:
        """A client that authenticates as the bearer of `token` (and only that)."""
        key = token_key(token)
        found = self._callers.pop(key, None)
        if found is None:
            base = self.own.configuration
            config = client.Configuration(host=base.host)
            config.ssl_ca_cert = base.ssl_ca_cert
            config.verify_ssl = base.verify_ssl
            config.api_key = {"BearerToken": f"Bearer {token}"}
            found = client.ApiClient(config)
        self._callers[key] = found
        while len(self._callers) > MAX_CALLER_CLIENTS:
            _, oldest = self._callers.popitem(last=False)
            # a request may still be using it: close it once that request is surely over
            asyncio.get_running_loop().call_later(CLOSE_DELAY_SECONDS, _close_later, oldest)
        return found

    async def close(self) -> None:
        for api in self._callers.values():
            await api.close()
        self._callers.clear()
        await self.own.close()
