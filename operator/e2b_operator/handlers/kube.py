"""The Kubernetes calls the operator makes besides kopf's own: status, Secrets, listings."""

from __future__ import annotations

import base64
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from ..api import GROUP, VERSION

MERGE_PATCH = "application/merge-patch+json"


class SecretMissing(LookupError):
    """A referenced Secret or key does not exist; the message says which."""


class Kube:
    """A kubernetes_asyncio client with the few calls the operator needs."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)

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

    async def delete(self, plural: str, namespace: str, name: str) -> None:
        """Delete one of our objects (already gone is fine)."""
        try:
            await self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, name
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

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
        return base64.b64decode(data[key]).decode()

    async def list_uids(self, plural: str) -> set[str]:
        """UIDs of every object of a kind, in all namespaces."""
        found = await self.custom.list_cluster_custom_object(GROUP, VERSION, plural)
        return {item["metadata"]["uid"] for item in found.get("items", [])}
