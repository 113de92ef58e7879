"""Helpers for integration tests: polling, kubectl JSON, the SDK's view of sandboxes."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
from e2b import Sandbox, SandboxQuery
from prometheus_client.parser import text_string_to_metric_families

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


@contextlib.contextmanager
def fresh_namespace(kube: LocalCluster, prefix: str = "t") -> Iterator[str]:
    """A new namespace named ``prefix``-random; deleted afterwards without waiting."""
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    kube.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        kube.kubectl("delete", "namespace", name, "--wait=false", check=False)


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


@contextlib.contextmanager
def faults(e2b: E2BLocal, spec: str) -> Iterator[list[dict[str, Any]]]:
    """e2b-local answers as ``spec`` says (see e2b_local/faults.py) while the block runs;
    the list yielded holds the rules (with their hits) when it ends."""
    headers = {"X-API-Key": e2b.api_key}
    url = f"{e2b.url}/admin/faults"
    httpx.post(url, json={"spec": spec}, headers=headers).raise_for_status()
    rules: list[dict[str, Any]] = []
    try:
        yield rules
    finally:
        rules += httpx.get(url, headers=headers).json()["rules"]
        httpx.delete(url, headers=headers).raise_for_status()


def sandboxes(e2b: E2BLocal, *, team_key: str | None = None, **metadata: str) -> list[Any]:
    """What the SDK itself lists, by metadata (with ``team_key``: as that e2b-local team)."""
    pages = Sandbox.list(
        query=SandboxQuery(metadata=metadata),
        api_key=team_key or e2b.api_key,
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
    body = {
        "type": "pythonBase",
        "requirements": {"runtime": "python3.11", "cpuCores": 1, "memoryMB": 256},
        "files": {"mainScript": script},
        "hooks": {"healthCheck": HEALTHY},
    }
    return _object("E2BTemplate", name, {**body, **spec})


def built(
    kube: LocalCluster, namespace: str, name: str = "app", *, detail=None, **spec: Any
) -> str:
    """Apply ``template(name, **spec)`` and wait until it is Ready; return its name."""
    apply(kube, namespace, template(name, **spec))
    wait_condition(kube, namespace, "e2bt", name, "Ready", 180, detail)
    return name


def deployment(name: str, template_name: str, replicas: int = 1, **spec: Any) -> dict[str, Any]:
    body = {
        "templateRef": {"name": template_name},
        "replicas": replicas,
        "healthCheck": {"intervalSeconds": 5, "failureThreshold": 2, "timeoutSeconds": 5},
    }
    return _object("E2BDeployment", name, {**body, **spec})


def _object(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    meta = {"name": name}
    return {"apiVersion": "e2b.dev/v1alpha1", "kind": kind, "metadata": meta, "spec": spec}


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


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """A Prometheus endpoint's samples: (name, labels) -> value."""
    resp = httpx.get(url, timeout=30)
    resp.raise_for_status()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }


def sample(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """One sample's value, 0 if the series does not exist (yet, or any more)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def ready(kube: LocalCluster, namespace: str, name: str, replicas: int):
    """A check: the deployment is Ready with exactly ``replicas`` ready sandboxes."""

    def check():
        obj = get(kube, namespace, "e2bd", name)
        st = obj.get("status", {})
        return (
            is_true(obj, "Ready")
            and st.get("readyReplicas") == replicas
            and st.get("replicas") == replicas
            and st.get("observedGeneration") == obj["metadata"]["generation"]
            and obj
        )

    return check


def owned(e2b: E2BLocal, obj: dict) -> list:
    """The sandboxes of a deployment object, as the SDK lists them."""
    return sandboxes(e2b, **{"k8s-deployment-uid": obj["metadata"]["uid"]})


def connect(e2b: E2BLocal, sandbox_id: str) -> Sandbox:
    """The SDK's handle on one sandbox."""
    return Sandbox.connect(sandbox_id, api_key=e2b.api_key, api_url=e2b.url, sandbox_url=e2b.url)
