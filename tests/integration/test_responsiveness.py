"""The operator reacts to what happens, not to its health-check interval.

Each deployment here is checked every hour (intervalSeconds: 3600): becoming Ready, or
getting a lost sandbox replaced, within the test's wait proves the operator did not wait for
the interval. What is asserted is the order of events, not a time budget.
"""

from __future__ import annotations

from e2b import Sandbox

from support import apply, deployment, get, is_true, template, wait_condition, wait_for

SLOW_MAIN = (
    "import pathlib, time\ntime.sleep(2)\npathlib.Path('/tmp/up').touch()\ntime.sleep(86400)\n"
)
HOURLY = {"intervalSeconds": 3600, "failureThreshold": 1, "timeoutSeconds": 5}


def sandbox_ids(obj: dict) -> set[str]:
    return {s["sandboxID"] for s in (obj.get("status") or {}).get("sandboxes") or []}


def test_a_slow_starting_app_becomes_ready_without_waiting_an_interval(kube, namespace, operator):
    apply(
        kube,
        namespace,
        template("slow", script=SLOW_MAIN, hooks={"healthCheck": "test -f /tmp/up"}),
    )
    wait_condition(kube, namespace, "e2bt", "slow", "Ready", 120, operator.tail)
    apply(kube, namespace, deployment("slow", "slow", replicas=1, healthCheck=HOURLY))

    def starting_then_ready():
        obj = get(kube, namespace, "e2bd", "slow")
        phases = [s["phase"] for s in (obj.get("status") or {}).get("sandboxes") or []]
        seen.update(phases)
        return is_true(obj, "Ready") and obj

    seen: set[str] = set()
    obj = wait_for(starting_then_ready, 60, "Ready (an hour-long interval not waited)")
    assert "Starting" in seen  # its first check failed: the main script was not up yet
    (entry,) = obj["status"]["sandboxes"]
    assert entry["phase"] == "Running" and entry["consecutiveFailures"] == 0
    reasons = {c["type"]: c["reason"] for c in obj["status"]["conditions"] if c["status"] == "True"}
    assert "Degraded" not in reasons  # starting is not unhealthy


def test_a_sandbox_killed_outside_the_operator_is_replaced_without_waiting_an_interval(
    kube, namespace, e2b, operator
):
    apply(kube, namespace, template("quick"))
    wait_condition(kube, namespace, "e2bt", "quick", "Ready", 120, operator.tail)
    apply(kube, namespace, deployment("victim", "quick", replicas=1, healthCheck=HOURLY))
    obj = wait_condition(kube, namespace, "e2bd", "victim", "Ready", 60, operator.tail)
    (victim,) = sandbox_ids(obj)
    Sandbox.kill(victim, api_key=e2b.api_key, api_url=e2b.url, sandbox_url=e2b.url)

    def replaced():
        obj = get(kube, namespace, "e2bd", "victim")
        ids = sandbox_ids(obj)
        return victim not in ids and ids and is_true(obj, "Ready") and obj

    obj = wait_for(replaced, 60, "a Ready replacement (an hour-long interval not waited)")
    assert obj["status"]["readyReplicas"] == 1
