"""Two operator processes with leader election: one acts, the other takes over when it dies."""

from __future__ import annotations

import json
import os
import signal

from e2b_operator import localstack
from e2b_operator.controlplane import processes
from support import apply, deployment, get, sandboxes, template, wait_for

LEASE = "e2b-operator"


def lease_holder(kube, namespace: str) -> str | None:
    out = kube.kubectl("-n", namespace, "get", "lease", LEASE, "-o", "json", check=False)
    if out.returncode:
        return None
    return json.loads(out.stdout)["spec"].get("holderIdentity")


def holds(kube, namespace: str, op: localstack.Operator) -> bool:
    return (lease_holder(kube, namespace) or "").endswith(f"-{op.pid}")


def test_one_leader_acts_and_the_standby_takes_over_when_it_is_killed(
    kube, namespace, e2b, operator, tmp_path
):
    env = {
        **operator.ENV,
        "E2B_OPERATOR_LEASE": f"{namespace}/{LEASE}",
        "E2B_OPERATOR_LEASE_DURATION_SECONDS": "8",
        "E2B_OPERATOR_LEASE_RENEW_DEADLINE_SECONDS": "6",
        "E2B_OPERATOR_LEASE_RETRY_SECONDS": "1",
    }
    start = lambda name: localstack.start_operator(tmp_path / name, kube, e2b, env)  # noqa: E731
    text = lambda op: op.log.read_text(errors="replace")  # noqa: E731
    logs = lambda: "\n".join(f"--- {op.log}\n{processes.tail(op.log)}" for op in ops)  # noqa: E731
    operator.stop()  # the session's operator acts alone, without a Lease
    ops: list[localstack.Operator] = []
    try:
        ops.append(first := start("first"))
        wait_for(lambda: holds(kube, namespace, first), 60, "the first to lead", logs)
        ops.append(second := start("second"))
        wait_for(lambda: "standing by: lease" in text(second), 60, "the standby", logs)

        apply(kube, namespace, template("app"), deployment("web", "app", replicas=2))
        obj = wait_for(
            lambda: (
                (o := get(kube, namespace, "e2bd", "web")).get("status", {}).get("readyReplicas")
                == 2
                and o
            ),
            150,
            "2 ready",
            logs,
        )
        assert f"[{namespace}/web] status written" in text(first)
        assert f"[{namespace}/" not in text(second)  # the standby never touched an object
        assert "leading:" not in text(second)
        assert holds(kube, namespace, first)

        os.kill(first.pid, signal.SIGKILL)
        wait_for(lambda: holds(kube, namespace, second), 60, "the standby to lead", logs)
        kube.kubectl("-n", namespace, "scale", "e2bd/web", "--replicas=3")
        wait_for(
            lambda: get(kube, namespace, "e2bd", "web")["status"].get("readyReplicas") == 3,
            120,
            "3 ready, made by the new leader",
            logs,
        )
        after = text(second).split("leading:", 1)[1]
        assert f"[{namespace}/web] status written" in after
        uid = obj["metadata"]["uid"]
        listed = sandboxes(e2b, **{"k8s-deployment-uid": uid})
        assert len(listed) == 3, [s.metadata for s in listed]  # no duplicates from the hand-over

        # A clean stop hands the Lease over at once: released, not left to expire.
        ops.append(third := start("third"))
        wait_for(lambda: "standing by: lease" in text(third), 60, "a new standby", logs)
        second_pid = second.pid
        second.stop()
        assert "released lease" in text(second)
        assert not (lease_holder(kube, namespace) or "").endswith(f"-{second_pid}")
        wait_for(lambda: holds(kube, namespace, third), 60, "the new standby to lead", logs)
    finally:
        for op in ops:
            op.stop()
        operator.start()
