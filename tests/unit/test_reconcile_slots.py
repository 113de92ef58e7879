"""Per-instance operations: retired instances keep the others in place, a restart replaces one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from e2b_operator.api import E2BDeploymentSpec
from e2b_operator.reconcile.config import instance_config, slot_hashes
from e2b_operator.reconcile.deployment import Observation, TemplateView, decide
from e2b_operator.reconcile.hashing import stable_hash
from e2b_operator.reconcile.health import Health
from e2b_operator.reconcile.observed import ObservedSandbox
from e2b_operator.reconcile.slots import shard_step, slot_indices

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SYMBOLS = {"config": {"symbols": ["AAPL", "GOOGL", "MSFT"]}, "shardBy": "symbols"}


def spec(**kw) -> E2BDeploymentSpec:
    return E2BDeploymentSpec.from_wire({"templateRef": {"name": "app"}, **kw})


def test_retired_instances_are_skipped_and_the_others_keep_their_config() -> None:
    three = spec(replicas=3, **SYMBOLS)
    two = spec(replicas=2, retiredInstances=[1], **SYMBOLS)
    assert slot_indices(three) == [0, 1, 2] and slot_indices(two) == [0, 2]
    assert shard_step(three) == shard_step(two) == 3
    assert [instance_config(two, i)["symbols"] for i in (0, 2)] == [["AAPL"], ["MSFT"]]
    assert instance_config(two, 2) == instance_config(three, 2)
    hashes = slot_hashes(three, "t", [])
    assert slot_hashes(two, "t", []) == {0: hashes[0], 2: hashes[2]}
    # unchanged for deployments that never retired or restarted an instance
    assert hashes[1] == stable_hash("t", [], instance_config(three, 1), length=10)
    one = spec(replicas=1, retiredInstances=[1, 2], **SYMBOLS)
    assert instance_config(one, 0) == instance_config(three, 0)  # still only AAPL
    assert slot_indices(spec(replicas=2, retiredInstances=[0, 3])) == [1, 2]
    assert shard_step(spec(replicas=0)) == 1


def test_a_restart_changes_only_that_instance_hash() -> None:
    three = spec(replicas=3, **SYMBOLS)
    at = NOW.isoformat().replace("+00:00", "Z")
    restarted = spec(replicas=3, instanceRestarts=[{"index": 1, "restartedAt": at}], **SYMBOLS)
    before, after = slot_hashes(three, "t", []), slot_hashes(restarted, "t", [])
    assert [before[i] == after[i] for i in range(3)] == [True, False, True]


def observe(sp: E2BDeploymentSpec, hashes: dict[int, str]) -> Observation:
    boxes = tuple(
        ObservedSandbox(
            f"sbx-{i}",
            "running",
            {"instance-index": str(i), "template-hash": h},
            started_at=NOW - timedelta(minutes=1),
        )
        for i, h in slot_hashes(spec(replicas=3, **SYMBOLS), "t", []).items()
    )
    return Observation(
        generation=2,
        name="web",
        spec=sp,
        template=TemplateView("app", ready=True, template_id="tpl", spec_hash="t"),
        wanted_hashes=hashes,
        sandboxes=boxes,
        health={b.sandbox_id: Health(healthy=True, passed=True) for b in boxes},
        previous=None,
        now=NOW,
    )


def test_retiring_one_instance_deletes_only_its_sandbox() -> None:
    two = spec(replicas=2, retiredInstances=[1], **SYMBOLS)
    plan = decide(observe(two, slot_hashes(two, "t", [])))
    assert [s.sandbox_id for s, _ in plan.delete] == ["sbx-1"] and plan.create == []
    assert plan.status.ready == "2/2"
    phases = {s.sandbox_id: (s.index, s.phase) for s in plan.status.sandboxes}
    assert phases == {"sbx-0": (0, "Running"), "sbx-1": (1, "Terminating"), "sbx-2": (2, "Running")}


def test_restarting_one_instance_replaces_only_it() -> None:
    at = NOW.isoformat().replace("+00:00", "Z")
    restarted = spec(replicas=3, instanceRestarts=[{"index": 1, "restartedAt": at}], **SYMBOLS)
    plan = decide(observe(restarted, slot_hashes(restarted, "t", [])))
    assert plan.create == [1] and plan.delete == []  # surge first; sbx-1 goes once 1 is ready
