"""The toolkit's only door to Kubernetes: e2b.dev objects through kubernetes_asyncio.

Every toolkit call goes through the Kubernetes API (and so through the operator), so what a
script does, kubectl and GitOps see too. Failures become `ToolkitError`s with one-line messages.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

from e2b_operator.api import GROUP, VERSION

T = TypeVar("T")
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
FIELD_MANAGER = "e2b-toolkit"
KINDS = {"e2btemplates": "template", "e2bdeployments": "deployment", "e2bexecutions": "execution"}


class ToolkitError(Exception):
    """A toolkit failure with a one-line, user-facing message; `status` is the Kubernetes
    API's HTTP status when it answered with an error."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotFoundError(ToolkitError, LookupError):
    """A named template, deployment, execution or sandbox does not exist."""


class Conflict(ToolkitError):
    """The object already exists or changed since it was read."""


class WaitTimeout(ToolkitError):
    """Something waited for did not happen in time."""


class ClusterUnreachable(ToolkitError):
    """The Kubernetes API cannot be reached or the kubeconfig is unusable."""


def resource_name(name: str) -> str:
    """The object name for a seed-style id: 'python_base' -> 'python-base'."""
    return name.strip().lower().replace("_", "-")


def kubeconfig_path(kubeconfig: str | None = None) -> str:
    """The kubeconfig file: the argument, else the first of $KUBECONFIG, else ~/.kube/config."""
    if kubeconfig:
        return kubeconfig
    env = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    return env[0] if env else str(Path.home() / ".kube" / "config")


def default_namespace(kubeconfig: str | None = None, context: str | None = None) -> str:
    """The current context's namespace, the pod's namespace in a cluster, else 'default'."""
    path = kubeconfig_path(kubeconfig)
    try:
        if not Path(path).exists():
            raise OSError(path)
        contexts, current = config.list_kube_config_contexts(path)
        chosen = (
            next((c for c in contexts if c["name"] == context), current) if context else current
        )
        return chosen.get("context", {}).get("namespace") or "default"
    except (config.ConfigException, OSError, TypeError, KeyError):
        if SERVICE_ACCOUNT_NAMESPACE.exists():
            return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
        return "default"


async def connect(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """An ApiClient from the kubeconfig, or in-cluster credentials when there is none."""
    path = kubeconfig_path(kubeconfig)
    if not kubeconfig and not Path(path).exists() and "KUBERNETES_SERVICE_HOST" in os.environ:
        config.load_incluster_config()
        return client.ApiClient()
    if not Path(path).exists():
        raise ClusterUnreachable(f"no kubeconfig at {path}: set KUBECONFIG or --kubeconfig")
    try:
        return await config.new_client_from_config(config_file=path, context=context)
    except (config.ConfigException, OSError) as exc:
        raise ClusterUnreachable(f"cannot load kubeconfig {path}: {_line(exc)}") from exc


def run_sync(fn: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine function to completion from synchronous code, even inside a running
    event loop (then in a worker thread with its own loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(fn())  # type: ignore[arg-type]
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["value"] = asyncio.run(fn())  # type: ignore[arg-type]
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=work, name="e2b-toolkit-sync")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


class Objects:
    """CRUD of e2b.dev objects of one namespace; errors become ToolkitErrors."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self.custom = client.CustomObjectsApi(api)

    async def get(self, plural: str, name: str) -> dict[str, Any]:
        return await self._call(
            plural,
            name,
            self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, name),
        )

    async def find(self, plural: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return await self.get(plural, name)
        except NotFoundError:
            return None

    async def list(self, plural: str, label_selector: str = "") -> list[dict[str, Any]]:
        found = await self._call(
            plural,
            "",
            self.custom.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, plural, label_selector=label_selector
            ),
        )
        return sorted(found.get("items", []), key=lambda o: o["metadata"]["name"])

    async def create(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._call(
            plural,
            body["metadata"].get("name", ""),
            self.custom.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, plural, body, field_manager=FIELD_MANAGER
            ),
        )

    async def replace(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        return await self._call(
            plural,
            name,
            self.custom.replace_namespaced_custom_object(
                GROUP, VERSION, self.namespace, plural, name, body, field_manager=FIELD_MANAGER
            ),
        )

    async def patch(self, plural: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """A JSON merge patch."""
        return await self._call(
            plural,
            name,
            self.custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                plural,
                name,
                patch,
                field_manager=FIELD_MANAGER,
                _content_type="application/merge-patch+json",
            ),
        )

    async def delete(self, plural: str, name: str) -> None:
        await self._call(
            plural,
            name,
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, self.namespace, plural, name, propagation_policy="Background"
            ),
        )

    async def watch(self, plural: str, name: str, timeout: float) -> AsyncIterator[dict[str, Any]]:
        """The object now, then again at every change, for up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._errors(plural, name):
            listed = await self.custom.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, plural, field_selector=f"metadata.name={name}"
            )
            if not listed["items"]:
                raise ApiException(status=404, reason="NotFound")
            yield listed["items"][0]
            version = listed["metadata"]["resourceVersion"]
            while (left := deadline - time.monotonic()) > 0:
                async with watch.Watch().stream(
                    self.custom.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self.namespace,
                    plural,
                    field_selector=f"metadata.name={name}",
                    resource_version=version,
                    timeout_seconds=max(1, int(left)),
                ) as events:
                    async for event in events:
                        if event["type"] == "DELETED":
                            raise ApiException(status=404, reason="NotFound")
                        obj = event["object"]
                        version = obj["metadata"]["resourceVersion"]
                        yield obj

    async def _call(self, plural: str, name: str, call: Awaitable[Any]) -> Any:
        with self._errors(plural, name):
            return await call

    @contextmanager
    def _errors(self, plural: str, name: str) -> Iterator[None]:
        """Turn Kubernetes API and connection failures into ToolkitErrors."""
        what = f"{KINDS.get(plural, plural)} {name!r}" if name else KINDS.get(plural, plural)
        try:
            yield
        except ApiException as exc:
            if exc.status == 404 and name:
                raise NotFoundError(f"{what} not found in namespace {self.namespace}", 404) from exc
            if exc.status == 409:
                raise Conflict(f"{what}: {api_message(exc)}", 409) from exc
            if exc.status == 404:
                raise ToolkitError(
                    f"the {plural}.{GROUP} CRD is not installed in this cluster", 404
                ) from exc
            raise ToolkitError(f"{what}: {api_message(exc)}", exc.status) from exc
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            host = self.api.configuration.host
            raise ClusterUnreachable(
                f"cannot reach the Kubernetes API at {host}: {_line(exc)}"
            ) from exc


def api_message(exc: ApiException) -> str:
    """The apiserver's own message from an ApiException body, on one line."""
    try:
        message = json.loads(exc.body or "{}").get("message") or exc.reason
    except ValueError:
        message = exc.reason or str(exc.status)
    return _line(message)


def _line(value: Any) -> str:
    return re.sub(r"\s+", " ", str(value)).strip()
