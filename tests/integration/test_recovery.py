"""What happens around operator restarts: orphans are swept, a bad API key stalls, then heals."""

from __future__ import annotations

import json

from e2b_operator import localstack
from e2b_operator.localstack import E2BLocal
from support import (
    apply,
    built,
    condition,
    deployment,
    get,
    is_true,
    sandboxes,
    template,
    wait_condition,
    wait_for,
)


def test_sandboxes_of_a_deployment_deleted_while_down_are_swept(kube, namespace, e2b, operator):
    built(kube, namespace, detail=operator.tail)
    apply(kube, namespace, deployment("gone", "app", replicas=2))
    obj = wait_for(
        lambda: (
            (o := get(kube, namespace, "e2bd", "gone"))["status"].get("readyReplicas") == 2 and o
        ),
        180,
        "2 ready",
        operator.tail,
    )
    uid = obj["metadata"]["uid"]
    operator.stop()
    try:
        kube.kubectl("-n", namespace, "delete", "e2bd", "gone", "--wait=false")
        kube.kubectl(
            "-n", namespace, "patch", "e2bd", "gone", "--type=merge",
            "-p", '{"metadata":{"finalizers":null}}',
        )  # fmt: skip
        # Usually 2; another count when a replacement was under way as the operator stopped
        # (under load a health check can time out). Whatever is there must go.
        assert sandboxes(e2b, **{"k8s-deployment-uid": uid})
    finally:
        operator.start()
    wait_for(
        lambda: not sandboxes(e2b, **{"k8s-deployment-uid": uid}),
        180,
        "orphaned sandboxes killed by the sweep",
        operator.tail,
    )


def test_rejected_api_key_stalls_then_recovers(kube, namespace, e2b: E2BLocal, operator):
    built(kube, namespace, detail=operator.tail)
    ns, name = localstack.API_KEY_SECRET
    bad = {"stringData": {"apiKey": "e2b_not_the_key"}}
    kube.kubectl("-n", ns, "patch", "secret", name, "--type=merge", "-p", json.dumps(bad))
    try:
        operator.restart()
        apply(kube, namespace, deployment("locked", "app", replicas=1))
        obj = wait_condition(kube, namespace, "e2bd", "locked", "Stalled", 120, operator.tail)
        assert condition(obj, "Stalled")["reason"] == "Unauthorized"
        assert "API key" in condition(obj, "Stalled")["message"]
        assert "e2b_not_the_key" not in json.dumps(obj) + operator.log.read_text()
    finally:
        localstack.store_api_key(kube, e2b)
        operator.restart()
    wait_condition(kube, namespace, "e2bd", "locked", "Ready", 180, operator.tail)


def test_rollout_that_never_becomes_ready_stalls_at_its_deadline(kube, namespace, operator):
    apply(kube, namespace, template("never", hooks={"healthCheck": "false"}))
    wait_condition(kube, namespace, "e2bt", "never", "Ready", 240)
    apply(kube, namespace, deployment("stuck", "never", replicas=1, progressDeadlineSeconds=10))
    obj = wait_condition(kube, namespace, "e2bd", "stuck", "Stalled", 120, operator.tail)
    assert condition(obj, "Stalled")["reason"] == "ProgressDeadlineExceeded"
    assert not is_true(obj, "Reconciling")
    apply(kube, namespace, template("never", hooks={"healthCheck": "true"}))
    wait_condition(kube, namespace, "e2bd", "stuck", "Ready", 180, operator.tail)
