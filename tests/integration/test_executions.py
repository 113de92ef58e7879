"""E2BExecution as a resource: ephemeral sandboxes, failures, immutability, TTL."""

from __future__ import annotations

from support import apply, get, is_true, sandboxes, template, wait_condition, wait_for

SCRIPT = """
import json, sys
config = json.loads(sys.argv[1])
if config.get("fail"):
    print("it broke", file=sys.stderr)
    sys.exit(4)
print(json.dumps({"doubled": config["n"] * 2}))
"""


def execution(name: str, template_name: str, **spec) -> dict:
    return {
        "apiVersion": "e2b.dev/v1alpha1",
        "kind": "E2BExecution",
        "metadata": {"name": name},
        "spec": {"templateRef": {"name": template_name}, **spec},
    }


def finished(kube, namespace: str, name: str):
    def check():
        obj = get(kube, namespace, "e2bx", name)
        return obj.get("status", {}).get("phase") in ("Succeeded", "Failed") and obj

    return check


def test_ephemeral_run_succeeds_then_expires(kube, namespace, e2b, operator) -> None:
    apply(kube, namespace, template("calc", script=SCRIPT))
    wait_condition(kube, namespace, "e2bt", "calc", "Ready", 120)
    apply(kube, namespace, execution("once", "calc", input={"n": 21}, ttlSecondsAfterFinished=3))
    obj = wait_for(finished(kube, namespace, "once"), 90, "finished", operator.tail)
    st = obj["status"]
    assert (st["phase"], st["exitCode"], st["result"]) == ("Succeeded", 0, {"doubled": 42})
    assert st["ephemeral"] is True and is_true(obj, "Ready")
    assert "Succeeded" in kube.kubectl("-n", namespace, "get", "e2bx", "once").stdout
    edit = kube.kubectl(
        "-n", namespace, "patch", "e2bx", "once", "--type=merge",
        "-p", '{"spec":{"input":{"n":1}}}', check=False,
    )  # fmt: skip
    assert edit.returncode != 0 and "immutable" in edit.stderr
    uid = obj["metadata"]["uid"]
    wait_for(lambda: not sandboxes(e2b, **{"k8s-execution-uid": uid}), 30, "sandbox killed")
    wait_for(
        lambda: kube.kubectl("-n", namespace, "get", "e2bx", "once", check=False).returncode,
        30,
        "deleted after ttlSecondsAfterFinished",
    )


def test_failing_script_fails_with_its_stderr(kube, namespace, operator) -> None:
    apply(kube, namespace, template("calc", script=SCRIPT))
    wait_condition(kube, namespace, "e2bt", "calc", "Ready", 120)
    apply(kube, namespace, execution("broken", "calc", input={"fail": True}))
    obj = wait_for(finished(kube, namespace, "broken"), 90, "finished", operator.tail)
    st = obj["status"]
    assert (st["phase"], st["exitCode"]) == ("Failed", 4)
    assert "it broke" in st["stderrTail"] and is_true(obj, "Stalled")
