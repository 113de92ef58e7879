"""Helpers for integration tests: polling, kubectl JSON, the SDK's view of sandboxes."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

from e2b import Sandbox, SandboxQuery

from e2b_operator.controlplane.cluster import LocalCluster
from e2b_operator.localstack import E2BLocal

T = TypeVar("T")


def wait_for(
    check: Callable[[], T], timeout: float = 60, what: str = "condition", detail=None
) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` (and detail())."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = f"\n{detail()}" if detail else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{extra}")
        time.sleep(0.2)


def get(kube: LocalCluster, namespace: str, kind: str, name: str) -> dict[str, Any]:
    out = kube.kubectl("-n", namespace, "get", kind, name, "-o", "json")
    return json.loads(out.stdout)


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for c in obj.get("status", {}).get("conditions", []):
        if c["type"] == type_:
            return c
    return {}


def is_true(obj: dict[str, Any], type_: str) -> bool:
    return condition(obj, type_).get("status") == "True"


def sandboxes(e2b: E2BLocal, **metadata: str) -> list[Any]:
    """What the SDK itself lists, by metadata."""
    pages = Sandbox.list(
        query=SandboxQuery(metadata=metadata),
        api_key=e2b.api_key,
        api_url=e2b.url,
        sandbox_url=e2b.url,
    )
    found = []
    while pages.has_next:
        found += pages.next_items()
    return found


def apply(kube: LocalCluster, namespace: str, *objects: dict[str, Any]) -> None:
    for obj in objects:
        kube.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(obj))


HEALTHY = "test ! -f /tmp/sick"
"""Health check of the test template: a sandbox is made sick by touching /tmp/sick."""


def template(name: str, *, script: str = "print('hello')", **spec: Any) -> dict[str, Any]:
    """A small pythonBase E2BTemplate whose sandboxes can be made unhealthy on purpose."""
    body: dict[str, Any] = {
        "type": "pythonBase",
        "requirements": {"runtime": "python3.11", "cpuCores": 1, "memoryMB": 256},
        "files": {"mainScript": script},
        "hooks": {"healthCheck": HEALTHY},
    }
    body.update(spec)
    return {
        "apiVersion": "e2b.dev/v1alpha1",
        "kind": "E2BTemplate",
        "metadata": {"name": name},
        "spec": body,
    }


def deployment(name: str, template_name: str, replicas: int = 1, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "templateRef": {"name": template_name},
        "replicas": replicas,
        "healthCheck": {"intervalSeconds": 5, "failureThreshold": 2, "timeoutSeconds": 5},
    }
    body.update(spec)
    return {
        "apiVersion": "e2b.dev/v1alpha1",
        "kind": "E2BDeployment",
        "metadata": {"name": name},
        "spec": body,
    }


def wait_condition(
    kube: LocalCluster,
    namespace: str,
    kind: str,
    name: str,
    type_: str,
    timeout: float = 90,
    detail=None,
) -> dict[str, Any]:
    """Wait until the object's condition ``type_`` is True; return the object."""
    return wait_for(
        lambda: is_true(obj := get(kube, namespace, kind, name), type_) and obj,
        timeout,
        f"{kind}/{name} {type_}=True",
        detail,
    )
