"""E2BTemplate end to end: builds through the SDK into e2b-local."""

from __future__ import annotations

import json

from support import apply, condition, deployment, get, is_true, template, wait_condition, wait_for


def test_failing_build_stalls_with_its_log_then_recovers(kube, namespace, operator) -> None:
    broken = template("bad", hooks={"postInstall": "echo about to fail; exit 3"})
    apply(kube, namespace, broken)
    obj = wait_condition(kube, namespace, "e2bt", "bad", "Stalled", 120, operator.tail)
    assert obj["status"]["phase"] == "Failed"
    assert condition(obj, "Stalled")["reason"] == "BuildFailed"
    assert any("about to fail" in line for line in obj["status"]["buildLogTail"])
    columns = kube.kubectl("-n", namespace, "get", "e2bt", "bad").stdout
    assert "Failed" in columns and "pythonBase" in columns
    apply(kube, namespace, template("bad", hooks={"postInstall": "echo fixed"}))
    obj = wait_condition(kube, namespace, "e2bt", "bad", "Ready", 120, operator.tail)
    assert obj["status"]["templateID"] and obj["status"]["buildID"]
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"] == 2
    assert not is_true(obj, "Stalled") and not obj["status"].get("buildLogTail")


def test_delete_waits_while_a_deployment_uses_it(kube, namespace, operator) -> None:
    apply(kube, namespace, template("shared"))
    wait_condition(kube, namespace, "e2bt", "shared", "Ready", 120)
    apply(kube, namespace, deployment("user", "shared", replicas=0))
    kube.kubectl("-n", namespace, "delete", "e2bt", "shared", "--wait=false")
    held = wait_for(
        lambda: (
            (o := get(kube, namespace, "e2bt", "shared"))["status"].get("phase") == "Deleting" and o
        ),
        30,
        "Deleting while in use",
        operator.tail,
    )
    assert "user" in held["status"]["message"]
    kube.kubectl("-n", namespace, "delete", "e2bd", "user", "--timeout=60s")
    kube.kubectl("-n", namespace, "wait", "--for=delete", "e2bt/shared", "--timeout=60s")


def test_fields_e2b_cannot_honour_are_a_condition_and_warning_and_the_build_completes(
    kube, namespace, operator
) -> None:
    apply(kube, namespace, template("gpu", requirements={"gpuEnabled": True}))
    obj = wait_condition(kube, namespace, "e2bt", "gpu", "Ready", 120, operator.tail)
    ignored = condition(obj, "FieldsIgnored")
    assert ignored["status"] == "True" and ignored["reason"] == "UnsupportedByBackend"
    assert ignored["message"].startswith("requirements.gpuEnabled: E2B sandboxes have no GPU")
    assert obj["status"]["templateID"]

    def warned() -> list[dict]:
        out = kube.kubectl(
            "-n", namespace, "get", "events", "-o", "json",
            "--field-selector", "involvedObject.name=gpu,reason=FieldsIgnored",
        ).stdout  # fmt: skip
        return [e for e in json.loads(out)["items"] if e["type"] == "Warning"]

    event = wait_for(warned, 30, "a FieldsIgnored Warning event", operator.tail)[0]
    assert "requirements.gpuEnabled" in event["message"]
