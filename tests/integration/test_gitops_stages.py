"""GitOps health of live objects at each stage, judged by the real Flux and Argo CD code.

Objects come from the real apiserver while the real operator drives them against e2b-local; the
template's build waits on a gate (an address of our test host it polls) so the building stage
is caught for sure. All snapshots are judged in one run of tools/gitops-health.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2b_operator.controlplane.cluster import LocalCluster
from gitops import judge
from nettarget import NetnsTarget
from support import condition, deployment, get, is_true, template, wait_for

HOLD = "e2b.dev/test-hold"

# stage -> (kstatus as Flux `wait: true` runs it, Flux with the example healthCheckExprs,
# Argo CD with the shipped checks)
EXPECTED = {
    "fresh template": ("InProgress", "InProgress", "Progressing"),
    "fresh deployment": ("InProgress", "InProgress", "Progressing"),
    "building template": ("InProgress", "InProgress", "Progressing"),
    "building deployment": ("InProgress", "InProgress", "Progressing"),
    "ready template": ("Current", "Current", "Healthy"),
    "ready deployment": ("Current", "Current", "Healthy"),
    "scaling deployment": ("InProgress", "InProgress", "Progressing"),
    "paused deployment": ("Current", "Current", "Suspended"),
    "stalled deployment": ("Failed", "Failed", "Degraded"),
    # Held by our finalizer after the operator's cleanup: CEL has no deletion rule, and without
    # the operator's finalizer the example's inProgress holds.
    "deleting deployment": ("Terminating", "InProgress", "Progressing"),
}


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[tuple[NetnsTarget, str]]:
    """A test-host address the build waits for; reachable once added to the host."""
    target = NetnsTarget(tmp_path).start()
    yield target, f"203.0.113.{100 + secrets.randbelow(150)}"
    target.close()


def _wait_for_gate(addr: str) -> str:
    """A build step that waits for ``addr``; unique to this run (a no-op nonce), since
    e2b-local's shared build cache served an identical template built by an earlier run at
    once, so the Building stage passed unseen."""
    probe = f"import socket; socket.create_connection(('{addr}', 80), 1).close()"
    wait = f'for i in $(seq 600); do python3 -c "{probe}" 2>/dev/null && break; sleep 0.5; done'
    return f"{wait}; : {secrets.token_hex(8)}"


def _create(kube: LocalCluster, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
    """Create and return the object as the apiserver serves it (before the operator writes)."""
    out = kube.kubectl("-n", namespace, "create", "-f", "-", "-o", "json", input=json.dumps(obj))
    return json.loads(out.stdout)


def _patch(kube: LocalCluster, namespace: str, name: str, patch: str, kind: str = "merge"):
    out = kube.kubectl(
        "-n", namespace, "patch", "e2bd", name, f"--type={kind}", "-p", patch, "-o", "json"
    )
    return json.loads(out.stdout)


def _observed(obj: dict[str, Any]) -> bool:
    return obj["status"].get("observedGeneration") == obj["metadata"]["generation"]


def test_each_stage_as_flux_and_argo_see_it(kube, namespace, operator, gate) -> None:
    target, addr = gate
    seen: dict[str, dict[str, Any]] = {}

    def stage(name: str, check) -> dict[str, Any]:
        seen[name] = wait_for(check, 120, name, operator.tail)
        return seen[name]

    hooks = {"healthCheck": "true", "postInstall": _wait_for_gate(addr)}
    seen["fresh template"] = _create(kube, namespace, template("gated", hooks=hooks))
    seen["fresh deployment"] = _create(kube, namespace, deployment("app", "gated"))

    def template_in(phase: str):
        return lambda: (
            _observed(o := get(kube, namespace, "e2bt", "gated"))
            and (o["status"].get("phase") == phase and o)
        )

    def deployment_when(check):
        return lambda: _observed(o := get(kube, namespace, "e2bd", "app")) and check(o) and o

    stage("building template", template_in("Building"))
    waiting = stage(
        "building deployment",
        deployment_when(lambda o: condition(o, "Ready").get("reason") == "TemplateNotReady"),
    )
    assert not is_true(waiting, "Degraded")

    target.add_address(addr)  # the build goes on
    stage("ready template", template_in("Ready"))
    stage("ready deployment", deployment_when(lambda o: is_true(o, "Ready")))

    seen["scaling deployment"] = _patch(kube, namespace, "app", '{"spec":{"replicas":2}}')
    wait_for(
        deployment_when(lambda o: o["status"].get("readyReplicas") == 2),
        120,
        "2 ready",
        operator.tail,
    )
    _patch(kube, namespace, "app", '{"spec":{"paused":true}}')
    stage(
        "paused deployment",
        deployment_when(lambda o: is_true(o, "Ready") and o["status"].get("phase") == "Paused"),
    )

    lost = deployment("lost", "missing")
    lost["metadata"]["finalizers"] = [HOLD]  # keeps it in the deleting stage until removed
    _create(kube, namespace, lost)
    stage(
        "stalled deployment",
        lambda: is_true(o := get(kube, namespace, "e2bd", "lost"), "Stalled") and o,
    )
    kube.kubectl("-n", namespace, "delete", "e2bd", "lost", "--wait=false")
    stage(
        "deleting deployment",
        lambda: (
            (o := get(kube, namespace, "e2bd", "lost"))["metadata"].get("deletionTimestamp")
            and o["metadata"].get("finalizers") == [HOLD]
            and o
        ),
    )
    wait_for(lambda: _release(kube, namespace, "lost"), 30, "our finalizer removed")

    verdicts = dict(zip(seen, judge(list(seen.values())), strict=True))
    assert {n: v.errors for n, v in verdicts.items() if v.errors} == {}
    assert {n: (v.kstatus, v.flux) for n, v in verdicts.items() if v.kstatus != v.flux} == {}
    assert {n: (v.kstatus, v.cel, v.argo) for n, v in verdicts.items()} == EXPECTED
    assert verdicts["deleting deployment"].argo_message == (
        f"Pending deletion; blocked by finalizers: {HOLD}"
    )


def _release(kube: LocalCluster, namespace: str, name: str) -> bool:
    """Remove our finalizer; the operator may be removing its own at the same time, hence the
    test op (a stale index fails, and the next poll retries)."""
    proc = kube.kubectl("-n", namespace, "get", "e2bd", name, "-o", "json", check=False)
    if proc.returncode != 0:
        return True  # gone
    finalizers = json.loads(proc.stdout)["metadata"].get("finalizers") or []
    if HOLD not in finalizers:
        return True
    at = f"/metadata/finalizers/{finalizers.index(HOLD)}"
    patch = json.dumps([{"op": "test", "path": at, "value": HOLD}, {"op": "remove", "path": at}])
    args = ("-n", namespace, "patch", "e2bd", name, "--type=json", "-p", patch)
    return kube.kubectl(*args, check=False).returncode == 0
