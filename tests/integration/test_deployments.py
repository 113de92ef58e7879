"""E2BDeployment end to end: real apiserver, real operator process, real SDK, e2b-local."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from e2b import Sandbox

from nettarget import NetnsTarget
from support import (
    apply,
    condition,
    connect,
    deployment,
    faults,
    get,
    is_true,
    owned,
    ready,
    template,
    wait_condition,
    wait_for,
)


def test_deploy_three_then_scale(kube, namespace, e2b, app, operator) -> None:
    apply(kube, namespace, deployment("web", app, replicas=3, config={"greeting": "hi"}))
    obj = wait_for(ready(kube, namespace, "web", 3), 90, "3 ready", operator.tail)
    # kopf keeps its diff-base in memory (handlers/diffbase.py), not in an annotation
    assert not any("last-handled" in a for a in obj["metadata"].get("annotations") or {})
    found = owned(e2b, obj)
    assert len(found) == 3
    assert sorted(int(s.metadata["instance-index"]) for s in found) == [0, 1, 2]
    for s in found:
        assert s.metadata["k8s-namespace"] == namespace
        assert s.metadata["k8s-deployment"] == "web"
        assert s.metadata["managed-by"] == "e2b-operator"
        assert s.metadata["template-hash"]
    config = json.loads(connect(e2b, found[0].sandbox_id).files.read("/app/instance.json"))
    assert config["greeting"] == "hi" and config["instanceIndex"] == int(
        found[0].metadata["instance-index"]
    )
    columns = kube.kubectl("-n", namespace, "get", "e2bd", "web").stdout
    assert "3/3" in columns and "SandboxesReady" in columns

    scale = json.loads(
        kube.kubectl(
            "get",
            "--raw",
            f"/apis/e2b.dev/v1alpha1/namespaces/{namespace}/e2bdeployments/web/scale",
        ).stdout
    )
    assert scale["spec"]["replicas"] == 3 and scale["status"]["replicas"] == 3
    assert scale["status"]["selector"] == "e2b.dev/deployment=web"  # what an HPA reads

    kube.kubectl("-n", namespace, "scale", "e2bdeployment/web", "--replicas=5")
    obj = wait_for(ready(kube, namespace, "web", 5), 90, "5 ready", operator.tail)
    assert len(owned(e2b, obj)) == 5

    kube.kubectl("-n", namespace, "scale", "e2bdeployment/web", "--replicas=1")
    obj = wait_for(ready(kube, namespace, "web", 1), 90, "1 ready", operator.tail)
    left = wait_for(lambda: (s := owned(e2b, obj)) and len(s) == 1 and s, 30, "scale-down")
    assert left[0].metadata["instance-index"] == "0"


def test_template_change_rolls_within_max_unavailable(kube, namespace, e2b, app, operator):
    strategy = {"rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}}
    apply(kube, namespace, deployment("roll", app, replicas=3, strategy=strategy))
    obj = wait_for(ready(kube, namespace, "roll", 3), 90, "3 ready", operator.tail)
    before = {s.sandbox_id for s in owned(e2b, obj)}
    apply(kube, namespace, template("app", script="print('v2')"))
    lowest = 3

    def rolled():
        nonlocal lowest
        cur = get(kube, namespace, "e2bd", "roll")
        lowest = min(lowest, cur.get("status", {}).get("readyReplicas", 0))
        ids = {s.sandbox_id for s in owned(e2b, cur)}
        return ids and not ids & before and len(ids) == 3 and ready(kube, namespace, "roll", 3)()

    wait_for(rolled, 180, "every sandbox replaced", operator.tail)
    assert lowest >= 2, f"ready dropped to {lowest} (< replicas - maxUnavailable = 2)"


def test_sandbox_killed_behind_our_back_is_replaced(kube, namespace, e2b, app, operator):
    apply(kube, namespace, deployment("heal", app, replicas=2))
    obj = wait_for(ready(kube, namespace, "heal", 2), 90, "2 ready", operator.tail)
    victim = owned(e2b, obj)[0].sandbox_id
    assert Sandbox.kill(victim, api_key=e2b.api_key, api_url=e2b.url, sandbox_url=e2b.url)

    def replaced():
        ids = {s.sandbox_id for s in owned(e2b, obj)}
        return len(ids) == 2 and victim not in ids and ready(kube, namespace, "heal", 2)()

    wait_for(replaced, 90, "replacement of the killed sandbox", operator.tail)


def test_unhealthy_sandbox_degrades_then_is_replaced(kube, namespace, e2b, app, operator):
    apply(kube, namespace, deployment("sick", app, replicas=2))
    obj = wait_for(ready(kube, namespace, "sick", 2), 90, "2 ready", operator.tail)
    victim = owned(e2b, obj)[0].sandbox_id
    connect(e2b, victim).commands.run("touch /tmp/sick")
    degraded = wait_condition(kube, namespace, "e2bd", "sick", "Degraded", 60, operator.tail)
    assert victim in condition(degraded, "Degraded")["message"]
    assert condition(degraded, "Degraded")["reason"] == "SandboxUnhealthy"

    def replaced():
        o = ready(kube, namespace, "sick", 2)()
        ids = {s.sandbox_id for s in owned(e2b, obj)}
        return o and victim not in ids and not is_true(o, "Degraded")

    wait_for(replaced, 90, "unhealthy sandbox replaced", operator.tail)
    # The Degraded Warning (reason SandboxUnhealthy) says "Unhealthy" too: look for the
    # replacement's own event.
    events = json.loads(kube.kubectl("-n", namespace, "get", "events", "-o", "json").stdout)
    replacements = [e["message"] for e in events["items"] if e["reason"] == "Replaced"]
    assert any(victim in m and m.endswith(": Unhealthy") for m in replacements), replacements


def test_pause_and_resume(kube, namespace, e2b, app, operator) -> None:
    apply(kube, namespace, deployment("nap", app, replicas=2))
    obj = wait_for(ready(kube, namespace, "nap", 2), 90, "2 ready", operator.tail)
    ids = {s.sandbox_id for s in owned(e2b, obj)}
    kube.kubectl(
        "-n", namespace, "patch", "e2bd", "nap", "--type=merge", "-p", '{"spec":{"paused":true}}'
    )

    def paused():
        states = {s.sandbox_id: s.state.value for s in owned(e2b, obj)}
        o = get(kube, namespace, "e2bd", "nap")
        return (
            set(states) == ids
            and set(states.values()) == {"paused"}
            and (o["status"].get("phase") == "Paused")
        )

    wait_for(paused, 60, "all sandboxes paused", operator.tail)
    kube.kubectl(
        "-n", namespace, "patch", "e2bd", "nap", "--type=merge", "-p", '{"spec":{"paused":false}}'
    )
    wait_for(ready(kube, namespace, "nap", 2), 60, "resumed and ready", operator.tail)
    assert {s.sandbox_id for s in owned(e2b, obj)} == ids, "resume must keep the same sandboxes"
    # Ready needed a listing that showed both running. Under a full suite's load e2b-local
    # once listed one paused again after that (cause not found); a sandbox listed paused is
    # resumed again, so both end up running.
    wait_for(
        lambda: {s.state.value for s in owned(e2b, obj)} == {"running"},
        30,
        "both running",
        lambda: operator.tail() + "\ne2b-local:\n" + pause_log(e2b, ids),
    )


def pause_log(e2b, ids: set[str]) -> str:
    """e2b-local's log lines on these sandboxes (each pause and resume is one)."""
    return "\n".join(
        line for line in e2b.log.read_text().splitlines() if any(i in line for i in ids)
    )


@pytest.fixture
def test_host(tmp_path: Path) -> Iterator[NetnsTarget]:
    """A host of our own the sandboxes can reach (the machine's own addresses they cannot)."""
    target = NetnsTarget(tmp_path).start()
    yield target
    target.close()


def test_delete_runs_cleanup_hook_then_kills_all(kube, namespace, e2b, operator, test_host):
    # each instance's cleanup hook connects to its own address of the test host
    addrs = {i: f"203.0.113.{10 + i}" for i in (0, 1)}
    for addr in addrs.values():
        test_host.add_address(addr)
    hook = (
        'python3 -c "import os, socket; socket.create_connection('
        "('203.0.113.%d' % (10 + int(os.environ['E2B_INSTANCE_INDEX'])), 80), timeout=10)\""
    )
    spec = template("tidy", hooks={"healthCheck": "true", "cleanup": hook})
    spec["spec"]["requirements"]["networkAccess"] = True
    apply(kube, namespace, spec)
    wait_condition(kube, namespace, "e2bt", "tidy", "Ready", 120)
    apply(kube, namespace, deployment("bye", "tidy", replicas=2))
    obj = wait_for(ready(kube, namespace, "bye", 2), 90, "2 ready", operator.tail)
    kube.kubectl("-n", namespace, "delete", "e2bd", "bye", "--timeout=60s")
    assert all(test_host.contacts(addr) for addr in addrs.values()), "a cleanup hook did not run"
    assert owned(e2b, obj) == []


def test_operator_restart_mid_scale_leaves_no_duplicates(kube, namespace, e2b, app, operator):
    apply(kube, namespace, deployment("big", app, replicas=1))
    obj = wait_for(ready(kube, namespace, "big", 1), 90, "1 ready", operator.tail)
    kube.kubectl("-n", namespace, "scale", "e2bdeployment/big", "--replicas=8")
    wait_for(lambda: len(owned(e2b, obj)) >= 3, 60, "scale-up under way", operator.tail)
    operator.restart()
    wait_for(ready(kube, namespace, "big", 8), 120, "8 ready after restart", operator.tail)
    found = owned(e2b, obj)
    assert sorted(int(s.metadata["instance-index"]) for s in found) == list(range(8))


def test_missing_secret_stalls_then_recovers(kube, namespace, e2b, app, operator) -> None:
    env = [
        {"name": "PLAIN", "value": "visible"},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
    ]
    apply(kube, namespace, deployment("sec", app, replicas=1, env=env))
    stalled = wait_condition(kube, namespace, "e2bd", "sec", "Stalled", 60, operator.tail)
    assert condition(stalled, "Stalled")["reason"] == "SecretNotFound"
    assert "creds" in condition(stalled, "Stalled")["message"]
    secret_value = "s3cr3t-value-8f2a"
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds"},
        "data": {"token": base64.b64encode(secret_value.encode()).decode()},
    }
    apply(kube, namespace, secret)
    obj = wait_for(ready(kube, namespace, "sec", 1), 120, "Ready after the Secret", operator.tail)
    assert not is_true(obj, "Stalled")
    sbx = connect(e2b, owned(e2b, obj)[0].sandbox_id)
    assert sbx.commands.run("echo $TOKEN $PLAIN").stdout.split() == [secret_value, "visible"]
    events = kube.kubectl("-n", namespace, "get", "events", "-o", "json").stdout
    assert secret_value not in json.dumps(obj) + events + operator.log.read_text()


def test_unknown_template_stalls_then_recovers(kube, namespace, operator) -> None:
    apply(kube, namespace, deployment("orphan", "later", replicas=1))
    stalled = wait_condition(kube, namespace, "e2bd", "orphan", "Stalled", 60, operator.tail)
    assert condition(stalled, "Stalled")["reason"] == "TemplateNotFound"
    assert "later" in condition(stalled, "Ready")["message"]
    apply(kube, namespace, template("later"))
    wait_for(ready(kube, namespace, "orphan", 1), 150, "Ready once the template exists")


def test_backend_errors_back_off_and_converge(kube, namespace, e2b, app, operator) -> None:
    # The first calls surely fail (429s, then 503s); then at random. Shares below 1 alone
    # left it to chance: a run with no 429 at all passed as well.
    spec = (
        "429:1:2@/v2/sandboxes,503:1:4@/v2/sandboxes,"
        "503:0.5:6@/v2/sandboxes,429:0.5:4@/v2/sandboxes,delay=0.3:0.3:10"
    )
    with faults(e2b, spec) as rules:
        apply(kube, namespace, deployment("flaky", app, replicas=3))
        obj = wait_for(ready(kube, namespace, "flaky", 3), 180, "converged", operator.tail)
    assert [r["hits"] for r in rules[:2]] == [2, 4], rules  # E2B did answer 429 and 503
    assert len(owned(e2b, obj)) == 3


def test_sandboxes_outlive_their_e2b_timeout(kube, namespace, e2b, app, operator) -> None:
    """timeoutSeconds is E2B's kill-at; the operator keeps healthy sandboxes alive past it."""
    apply(kube, namespace, deployment("long", app, replicas=1, timeoutSeconds=30))
    obj = wait_for(ready(kube, namespace, "long", 1), 90, "ready", operator.tail)
    first = owned(e2b, obj)[0]
    # past the kill-at E2B had then (30 s after the sandbox's creation or last keep-alive)
    time.sleep(max(0.0, (first.end_at - datetime.now(UTC)).total_seconds() + 3))
    now = owned(e2b, obj)
    assert [s.sandbox_id for s in now] == [first.sandbox_id], "the sandbox expired"
    assert now[0].end_at > first.end_at
