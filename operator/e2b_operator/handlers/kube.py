"""The Kubernetes calls the operator makes besides kopf's own: status, Secrets, listings.

Each call notes whether the apiserver answered: after calls failed because it could not
(restarting, etcd away), the first one that gets an answer calls the ``on_recovered``
callbacks, so loops that backed off meanwhile look again at once.
"""

from __future__ import annotations

import base64
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from ..api import GROUP, VERSION
from ..reconcile.backoff import backoff

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
RETRY_MAX_SECONDS = 5.0
"""A loop whose pass failed because the apiserver could not answer retries at least this
often (and at once when another call gets an answer)."""

P = ParamSpec("P")
R = TypeVar("R")


def unavailable(exc: BaseException) -> bool:
    """The apiserver could not answer (down, restarting, its etcd away, overloaded): a
    passing state, unlike an answer such as 404 or 403."""
    if isinstance(exc, ApiException):
        return not exc.status or exc.status == 429 or exc.status >= 500
    return isinstance(exc, (aiohttp.ClientError, TimeoutError, ConnectionError))


def brief(exc: BaseException) -> str:
    """One line on a failed call, for the log."""
    if isinstance(exc, ApiException):
        return f"HTTP {exc.status} {exc.reason}"
    return f"{type(exc).__name__}: {exc}"[:200]


@dataclass
class KubeRetry:
    """A reconcile loop's passes in a row that the apiserver could not answer."""

    failures: int = 0

    async def run(self, one_pass: Callable[[], Awaitable[float]], who: str) -> float:
        """The pass's own delay until the next; for a pass the apiserver could not answer,
        a short growing one (not kopf's 60 s daemon backoff: it is back in seconds)."""
        try:
            delay = await one_pass()
        except Exception as exc:
            if not unavailable(exc):
                raise
            self.failures += 1
            delay = backoff(self.failures, RETRY_MAX_SECONDS)
            log.warning(
                "[%s] the Kubernetes API did not answer (%s): next pass in %.1fs",
                who,
                brief(exc),
                delay,
            )
            return delay
        self.failures = 0
        return delay


def _tracked(
    method: Callable[Concatenate[Kube, P], Awaitable[R]],
) -> Callable[Concatenate[Kube, P], Awaitable[R]]:
    """Note whether the apiserver answered the call (an answer may be an error, e.g. 404)."""

    @functools.wraps(method)
    async def call(self: Kube, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            result = await method(self, *args, **kwargs)
        except Exception as exc:
            self._answered(not unavailable(exc))
            raise
        self._answered(True)
        return result

    return call


class SecretMissing(LookupError):
    """A referenced Secret or key does not exist; the message says which."""


class SecretNotText(ValueError):
    """A referenced Secret value is not UTF-8 text; the message says which and how to fix it."""


class SecretForbidden(PermissionError):
    """The operator's ServiceAccount may not read the Secret."""


class Kube:
    """A kubernetes_asyncio client with the few calls the operator needs."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.failing = False
        """The last call found the apiserver unable to answer."""
        self._recovered: list[Callable[[], None]] = []

    def on_recovered(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when a call gets an answer after calls that could not."""
        self._recovered.append(callback)

    def _answered(self, answered: bool) -> None:
        was, self.failing = self.failing, not answered
        if was and answered:
            for callback in self._recovered:
                callback()

    @classmethod
    async def connect(cls) -> Kube:
        """In-cluster credentials when running in a pod, else the kubeconfig."""
        try:
            config.load_incluster_config()
        except config.ConfigException:
            await config.load_kube_config()
        return cls(client.ApiClient())

    async def close(self) -> None:
        await self.api.close()

    @_tracked
    async def patch_status(
        self, plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> None:
        """Merge-patch ``status`` onto the object's status subresource."""
        await self.custom.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            namespace,
            plural,
            name,
            {"status": status},
            _content_type=MERGE_PATCH,  # type: ignore[call-arg]  # not in the client's stubs
        )

    @_tracked
    async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One of our objects; None if it does not exist."""
        try:
            return await self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    @_tracked
    async def delete(self, plural: str, namespace: str, name: str) -> None:
        """Delete one of our objects (already gone is fine)."""
        try:
            await self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, name
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    @_tracked
    async def secret_value(self, namespace: str, name: str, key: str) -> str:
        try:
            secret = await self.core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise SecretMissing(f"Secret {namespace}/{name} does not exist") from exc
            raise
        data = secret.data or {}
        if key not in data:
            raise SecretMissing(f"Secret {namespace}/{name} has no key {key!r}")
        try:
            return base64.b64decode(data[key]).decode()
        except UnicodeDecodeError as exc:
            raise SecretNotText(
                f"Secret {namespace}/{name} key {key!r} is not UTF-8 text (byte {exc.start} of "
                "the value); environment variables must be text: store the bytes base64-encoded "
                "and decode them in the sandbox"
            ) from None

    @_tracked
    async def read_secret(self, namespace: str, name: str) -> dict[str, bytes]:
        """A Secret's data, values decoded from base64 to bytes (not to text: the caller
        says what it expects); SecretMissing or SecretForbidden."""
        try:
            secret = await self.core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise SecretMissing(f"Secret {namespace}/{name} does not exist") from exc
            if exc.status == 403:
                raise SecretForbidden(f"403 reading Secret {namespace}/{name}") from exc
            raise
        return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}

    @_tracked
    async def list_uids(self, plural: str) -> set[str]:
        """UIDs of every object of a kind, in all namespaces, from a metadata-only listing
        (what client-go's metadata informers ask for): a thousand deployments' specs and
        statuses are neither sent nor parsed."""
        found = await self.api.call_api(
            f"/apis/{GROUP}/{VERSION}/{plural}",
            "GET",
            header_params={"Accept": METADATA_ONLY},
            response_types_map={200: "object"},
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
        )
        return {item["metadata"]["uid"] for item in found.get("items") or []}
