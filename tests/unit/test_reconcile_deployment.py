"""The pure E2BDeployment decision: scaling, rollouts, health, pause, conditions."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from e2b_operator.api import E2BDeploymentSpec
from e2b_operator.reconcile.backoff import backoff, reported
from e2b_operator.reconcile.deployment import (
    Memory,
    Observation,
    TemplateView,
    after_create,
    after_keepalive,
    decide,
    recovered,
)
from e2b_operator.reconcile.health import Health
from e2b_operator.reconcile.observed import ObservedSandbox, Problem, Throttle

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
READY_TEMPLATE = TemplateView("app", ready=True, template_id="tpl", spec_hash="h1")


def spec(**kw) -> E2BDeploymentSpec:
    return E2BDeploymentSpec.from_wire({"templateRef": {"name": "app"}, **kw})


def sbx(sid: str, index: int, hash_: str = "new", state: str = "running", **kw) -> ObservedSandbox:
    meta = {"instance-index": str(index), "template-hash": hash_}
    return ObservedSandbox(sid, state, meta, started_at=NOW - timedelta(minutes=1), **kw)


def observe(sp: E2BDeploymentSpec, sandboxes=(), healthy=(), unhealthy=(), **kw) -> Observation:
    health = {s: Health(healthy=True, passed=True) for s in healthy}
    health.update(
        {s: Health(healthy=False, failures=f, passed=True) for s, f in dict(unhealthy).items()}
    )
    args = {
        "generation": 3,
        "name": "web",
        "spec": sp,
        "template": READY_TEMPLATE,
        "wanted_hashes": dict.fromkeys(range(sp.replicas), "new"),
        "sandboxes": tuple(sandboxes),
        "health": health,
        "previous": None,
        "now": NOW,
    }
    args.update(kw)
    return Observation(**args)


def conditions(plan) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in plan.status.conditions}


def test_creates_every_missing_slot_and_reports_progress() -> None:
    plan = decide(observe(spec(replicas=3)))
    assert plan.create == [0, 1, 2]
    assert conditions(plan)["Ready"] == ("False", "RolloutInProgress")
    assert conditions(plan)["Reconciling"] == ("True", "RolloutInProgress")
    assert plan.status.observed_generation == 3
    assert plan.status.selector == "e2b.dev/deployment=web"


def test_converged_deployment_is_ready_and_idle() -> None:
    boxes = [sbx("a", 0), sbx("b", 1)]
    plan = decide(observe(spec(replicas=2), boxes, healthy=["a", "b"]))
    assert plan.idle
    assert conditions(plan)["Ready"] == ("True", "SandboxesReady")
    assert conditions(plan)["Stalled"][0] == "False"
    assert plan.status.ready == "2/2" and plan.status.phase == "Available"


def test_in_flight_creates_are_not_repeated() -> None:
    plan = decide(observe(spec(replicas=2), [sbx("a", 0)], healthy=["a"], creating=frozenset({1})))
    assert plan.create == []


def test_scale_down_removes_highest_indexes() -> None:
    boxes = [sbx(f"s{i}", i) for i in range(5)]
    plan = decide(observe(spec(replicas=2), boxes, healthy=[b.sandbox_id for b in boxes]))
    assert sorted(s.sandbox_id for s, why in plan.delete if why == "ScaledDown") == [
        "s2",
        "s3",
        "s4",
    ]
    assert plan.create == []


def test_a_scale_down_is_done_only_once_its_kills_are_made() -> None:
    """The status is written before the kills: saying Ready then, it stayed Ready (listing
    sandboxes already gone) when the operator died before the next pass."""
    boxes = [sbx(f"s{i}", i) for i in range(3)]
    plan = decide(observe(spec(replicas=1), boxes, healthy=[b.sandbox_id for b in boxes]))
    assert len(plan.delete) == 2
    assert conditions(plan)["Ready"] == ("False", "RolloutInProgress")
    assert "deleting 2" in {c.type: c for c in plan.status.conditions}["Ready"].message
    after = decide(observe(spec(replicas=1), boxes[:1], healthy=["s0"]))
    assert conditions(after)["Ready"] == ("True", "SandboxesReady") and after.idle


def test_a_resumed_sandbox_is_ready_once_a_listing_shows_it_running() -> None:
    """Ready on the resume call's word alone, status said 2/2 with a sandbox still paused."""
    resumed = replace(sbx("b", 1), confirmed=False)  # the resume returned; no listing since
    plan = decide(observe(spec(replicas=2), [sbx("a", 0), resumed], healthy=["a", "b"]))
    assert plan.status.ready_replicas == 1 and plan.resume == []
    assert conditions(plan)["Ready"] == ("False", "RolloutInProgress")
    listed = decide(observe(spec(replicas=2), [sbx("a", 0), sbx("b", 1)], healthy=["a", "b"]))
    assert conditions(listed)["Ready"] == ("True", "SandboxesReady")


def test_duplicates_in_a_slot_keep_one() -> None:
    boxes = [sbx("a", 0), sbx("dup", 0), sbx("b", 1)]
    plan = decide(observe(spec(replicas=2), boxes, healthy=["a", "b"]))
    assert [(s.sandbox_id, why) for s, why in plan.delete] == [("dup", "Duplicate")]


def _budget(value: int | str, replicas: int, rounding) -> int:
    """maxSurge (rounding up) or maxUnavailable (rounding down) as a Deployment reads it."""
    return value if isinstance(value, int) else int(rounding(replicas * int(value[:-1]) / 100))


@pytest.mark.parametrize(
    "surge,unavailable", [(1, 1), (0, 1), (1, 0), ("25%", "25%"), ("30%", "30%"), (2, 0)]
)
def test_rollout_never_drops_below_replicas_minus_max_unavailable(surge, unavailable) -> None:
    """Simulate a rollout step by step: every create becomes ready at the next step."""
    replicas = 4
    sp = spec(
        replicas=replicas,
        strategy={"rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
    )
    # 30% of 4 is 1.2: 2 to surge, 1 unavailable (25% of 4 rounds the same either way)
    up, down = _budget(surge, replicas, math.ceil), _budget(unavailable, replicas, math.floor)
    floor, ceiling = replicas - down, replicas + up
    boxes = {f"old{i}": sbx(f"old{i}", i, hash_="old") for i in range(replicas)}
    counter = 0
    for step in range(30):
        plan = decide(observe(sp, boxes.values(), healthy=list(boxes)))
        if step == 0:
            assert len(plan.create) == up, "the first step surges by the whole maxSurge"
        for s, _why in plan.delete:
            del boxes[s.sandbox_id]
        ready = len(boxes)
        assert ready >= floor, f"only {ready} ready after deletes"
        for index in plan.create:
            counter += 1
            boxes[f"new{counter}"] = sbx(f"new{counter}", index)
        assert len(boxes) <= ceiling, f"{len(boxes)} sandboxes exceed replicas + maxSurge"
        if plan.idle:
            break
    assert sorted(s.index for s in boxes.values()) == list(range(replicas))
    assert all(s.template_hash == "new" for s in boxes.values())


def test_recreate_deletes_all_before_creating() -> None:
    sp = spec(replicas=2, strategy={"type": "Recreate"})
    boxes = [sbx("o0", 0, "old"), sbx("o1", 1, "old")]
    plan = decide(observe(sp, boxes, healthy=["o0", "o1"]))
    assert {s.sandbox_id for s, _ in plan.delete} == {"o0", "o1"}
    assert plan.create == []


def test_unhealthy_past_threshold_is_replaced_and_degrades() -> None:
    sp = spec(replicas=2, healthCheck={"failureThreshold": 2})
    boxes = [sbx("a", 0), sbx("b", 1)]
    below = decide(observe(sp, boxes, healthy=["a"], unhealthy={"b": 1}))
    assert below.delete == []
    assert conditions(below)["Degraded"] == ("True", "SandboxUnhealthy")
    past = decide(observe(sp, boxes, healthy=["a"], unhealthy={"b": 2}))
    assert [(s.sandbox_id, why) for s, why in past.delete] == [("b", "Unhealthy")]


def test_vanished_sandbox_slot_is_refilled() -> None:
    plan = decide(observe(spec(replicas=2), [sbx("a", 0)], healthy=["a"]))
    assert plan.create == [1]


def test_paused_pauses_running_and_creates_nothing() -> None:
    boxes = [sbx("a", 0), sbx("b", 1, state="paused")]
    plan = decide(observe(spec(replicas=3, paused=True), boxes, healthy=["a"]))
    assert [s.sandbox_id for s in plan.pause] == ["a"]
    assert plan.create == [] and plan.delete == []
    assert plan.status.phase == "Paused"
    assert conditions(plan)["Ready"] == ("False", "Pausing")


def test_unpaused_resumes_paused_sandboxes() -> None:
    plan = decide(observe(spec(replicas=1), [sbx("a", 0, state="paused")]))
    assert [s.sandbox_id for s in plan.resume] == ["a"]


def test_missing_template_stalls_without_touching_sandboxes() -> None:
    plan = decide(observe(spec(replicas=2), [sbx("a", 0)], healthy=["a"], template=None))
    assert plan.create == [] and plan.delete == []
    assert conditions(plan)["Stalled"] == ("True", "TemplateNotFound")
    assert plan.status.phase == "Failed"


def test_transient_backend_problem_reconciles_and_degrades() -> None:
    problem = Problem("RateLimited", "E2B is rate limiting requests", stalled=False)
    plan = decide(observe(spec(replicas=1), problem=problem))
    assert plan.create == []
    assert conditions(plan)["Reconciling"] == ("True", "RateLimited")
    assert conditions(plan)["Degraded"] == ("True", "RateLimited")
    assert conditions(plan)["Stalled"][0] == "False"


def test_expiring_sandboxes_get_keepalive() -> None:
    sp = spec(replicas=1, timeoutSeconds=600)
    soon = sbx("a", 0, end_at=NOW + timedelta(seconds=100))
    assert [s.sandbox_id for s in decide(observe(sp, [soon], healthy=["a"])).keepalive] == ["a"]
    later = sbx("a", 0, end_at=NOW + timedelta(seconds=500))
    assert decide(observe(sp, [later], healthy=["a"])).keepalive == []


def test_timeout_refreshes_are_bounded_even_with_a_stale_listing() -> None:
    """Passes every 0.25 s for 2 minutes; E2B's listing shows a refresh only 5 s later:
    the shortest timeout is refreshed at most once per half of it."""
    sp = spec(replicas=1, timeoutSeconds=30)
    end_at, listed_end, refreshes, memory = NOW + timedelta(seconds=30), None, [], Memory()
    for step in range(480):
        now = NOW + timedelta(seconds=step / 4)
        if refreshes and now - refreshes[-1] >= timedelta(seconds=5):
            listed_end = end_at
        box = sbx("a", 0, end_at=listed_end or NOW + timedelta(seconds=30))
        plan = decide(observe(sp, [box], healthy=["a"], now=now), memory)
        memory = plan.memory
        assert box.end_at > now, "the sandbox expired"
        if plan.keepalive:
            refreshes.append(now)
            end_at = now + timedelta(seconds=30)
            memory = after_keepalive(memory, ["a"], now)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(refreshes)]
    assert len(refreshes) <= 120 / 15 + 1 and min(gaps) >= 14.5


def test_a_template_being_deleted_degrades_once_and_keeps_the_sandboxes() -> None:
    deleting = TemplateView("app", ready=True, template_id="tpl", spec_hash="h1", deleting=True)
    boxes = [sbx("a", 0)]
    plan = decide(observe(spec(replicas=1), boxes, healthy=["a"], template=deleting))
    assert conditions(plan)["Degraded"] == ("True", "TemplateDeleting")
    assert conditions(plan)["Ready"][0] == "True" and plan.delete == []
    assert [e.reason for e in plan.events] == ["TemplateDeleting"]
    again = observe(spec(replicas=1), boxes, healthy=["a"], template=deleting, previous=plan.status)
    assert decide(again, plan.memory).events == []


def test_transition_time_moves_only_when_status_flips() -> None:
    boxes = [sbx("a", 0)]
    first = decide(observe(spec(replicas=1), boxes, healthy=["a"]))
    later = NOW + timedelta(minutes=5)
    again = decide(
        observe(spec(replicas=1), boxes, healthy=["a"], previous=first.status, now=later)
    )
    assert again.status.conditions == first.status.conditions
    flipped = decide(observe(spec(replicas=1), previous=first.status, now=later))
    ready = next(c for c in flipped.status.conditions if c.type == "Ready")
    assert ready.status == "False" and ready.last_transition_time == later


def test_rollout_without_progress_past_the_deadline_stalls() -> None:
    sp = spec(replicas=2, progressDeadlineSeconds=60)
    boxes = [sbx("a", 0), sbx("b", 1)]
    first = decide(observe(sp, boxes, healthy=["a"], now=NOW - timedelta(seconds=90)))
    assert first.memory.progress_key == (3, 1, 1)
    assert first.memory.progress_at == NOW - timedelta(seconds=90)
    recent = decide(
        observe(sp, boxes, healthy=["a"], now=NOW - timedelta(seconds=30)), first.memory
    )
    assert recent.memory.progress_at == first.memory.progress_at  # no progress since
    assert conditions(recent)["Stalled"][0] == "False"
    assert conditions(recent)["Reconciling"] == ("True", "RolloutInProgress")
    late = decide(observe(sp, boxes, healthy=["a"]), recent.memory)
    assert conditions(late)["Stalled"] == ("True", "ProgressDeadlineExceeded")
    assert conditions(late)["Reconciling"][0] == "False"  # kstatus: Failed, not InProgress
    assert late.status.updated_ready_replicas == 1
    assert [e.reason for e in late.events] == ["ProgressDeadlineExceeded"]
    converged = decide(observe(sp, boxes, healthy=["a", "b"]), late.memory)
    assert conditions(converged)["Ready"] == ("True", "SandboxesReady")
    assert converged.memory.progress_at == NOW


def test_one_transient_blip_is_retried_before_it_shows() -> None:
    assert not reported(0, transient=True)
    assert reported(1, transient=True)
    assert reported(0, transient=False)
    assert [backoff(n) for n in (1, 2, 3, 20)] == [1.0, 2.0, 4.0, 60.0]


def test_startup_checks_come_fast_then_at_the_interval() -> None:
    h = Health()
    periods = []
    for _ in range(8):
        h = h.record(False, "not yet", NOW)
        periods.append(h.period(30))
    assert periods == [0.25, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    assert h.record(True, "", NOW).period(30) == 30
    assert Health().due(NOW, 30) and not h.due(NOW, 30)


def test_a_starting_sandbox_failing_checks_is_starting_not_unhealthy() -> None:
    starting = Health().record(False, "exit 7", NOW).record(False, "exit 7", NOW)
    starting = starting.record(False, "exit 7", NOW).record(False, "exit 7", NOW)
    obs = observe(spec(replicas=1), [sbx("a", 0)], health={"a": starting})
    plan = decide(obs)
    assert plan.delete == []
    assert plan.status.sandboxes[0].phase == "Starting"
    assert conditions(plan)["Degraded"][0] == "False"
    # once it has passed, failures in a row past the threshold (3) replace it: the pass
    # wiped the count, the startup's four failures do not add up with later ones
    failing = starting.record(True, "", NOW)
    for _ in range(2):
        failing = failing.record(False, "exit 7", NOW)
    plan = decide(observe(spec(replicas=1), [sbx("a", 0)], health={"a": failing}))
    assert plan.delete == [] and plan.status.sandboxes[0].phase == "Unhealthy"
    failing = failing.record(False, "exit 7", NOW)
    plan = decide(observe(spec(replicas=1), [sbx("a", 0)], health={"a": failing}))
    assert [(s.sandbox_id, why) for s, why in plan.delete] == [("a", "Unhealthy")]


def test_a_sandbox_that_never_passes_is_replaced_after_the_startup_timeout() -> None:
    old = ObservedSandbox(
        "a", "running", {"instance-index": "0", "template-hash": "new"}, NOW - timedelta(seconds=61)
    )
    sp = spec(replicas=1, healthCheck={"startupTimeoutSeconds": 60})
    plan = decide(observe(sp, [old], health={"a": Health().record(False, "no", NOW)}))
    assert [(s.sandbox_id, why) for s, why in plan.delete] == [("a", "StartupTimeout")]
    young = sbx("b", 0)  # one minute old, under the default 120 s
    plan = decide(observe(spec(replicas=1), [young], health={"b": Health()}))
    assert plan.delete == []


def test_the_reducer_carries_its_memory_and_says_when_to_come_back() -> None:
    sp = spec(replicas=2)
    boxes = [sbx("a", 0), sbx("b", 1)]
    start = decide(observe(sp))
    assert start.create == [0, 1] and start.wait == 0.0 and start.memory.replicas == 2
    settled = decide(observe(sp, boxes, healthy=["a", "b"]), start.memory)
    assert settled.idle and settled.events == []
    assert settled.wait == 30.0  # the health interval: nothing else is due
    scaled = decide(observe(spec(replicas=3), boxes, healthy=["a", "b"]), settled.memory)
    assert [(e.type, e.reason) for e in scaled.events] == [("Normal", "Scaled")]
    assert scaled.create == [2]


def test_a_first_transient_e2b_failure_is_retried_quietly_then_reported() -> None:
    blip = Problem("ServiceUnavailable", "E2B answered 503", stalled=False)
    quiet = decide(observe(spec(replicas=1), backend_error=blip))
    assert not quiet.write and quiet.memory.failures == 1 and quiet.wait == 1.0
    shown = decide(observe(spec(replicas=1), backend_error=blip), quiet.memory)
    assert shown.write and shown.create == [] and shown.memory.failures == 2
    assert conditions(shown)["Degraded"] == ("True", "ServiceUnavailable")
    assert shown.wait == 2.0


def test_creates_go_at_once_and_ramp_only_after_a_failure() -> None:
    sp = spec(replicas=40)
    assert len(decide(observe(sp, create_budget=32)).create) == 32
    in_flight = decide(observe(sp, create_budget=32, creating=frozenset(range(30))))
    assert len(in_flight.create) == 2  # the budget counts creates still in flight
    after = after_create(Memory(), failed=True, budget=32, now=NOW, cap=60)
    assert after.retry_creates_at == NOW + timedelta(seconds=1)
    held = decide(observe(sp, create_budget=32), after)
    assert held.create == [] and held.wait == 1.0
    later = NOW + timedelta(seconds=2)
    assert len(decide(observe(sp, create_budget=32, now=later), after).create) == 1
    ramps = []
    for _ in range(6):
        after = after_create(after, failed=False, budget=32, now=NOW, cap=60)
        ramps.append(after.ramp)
    assert ramps == [2, 4, 8, 16, None, None]
    assert after.retry_creates_at is None and after.create_failures == 0


def test_creates_waiting_on_the_rate_limit_say_rate_limited_not_degraded() -> None:
    wait = Throttle("RateLimited", "creates are paced to E2B's rate limit (5 creates/s)", 0.3)
    creating = frozenset({1, 2})
    obs = observe(spec(replicas=3), [sbx("a", 0)], healthy=["a"], creating=creating)
    momentary = decide(replace(obs, throttle=wait))
    assert conditions(momentary)["Reconciling"] == ("True", "RolloutInProgress")
    assert momentary.wait <= 0.7 + 1e-9  # back when the wait would show
    waiting = decide(replace(obs, throttle=replace(wait, waited_seconds=4.0)))
    assert conditions(waiting)["Reconciling"] == ("True", "RateLimited")
    assert conditions(waiting)["Ready"] == ("False", "RateLimited")
    assert conditions(waiting)["Degraded"] == ("False", "Healthy")
    ready = {c.type: c for c in waiting.status.conditions}["Ready"]
    assert "1/3 updated sandboxes ready" in ready.message and "5 creates/s" in ready.message
    assert waiting.status.phase == "Progressing"


def test_creates_held_by_the_sandbox_cap_degrade_only_when_it_persists() -> None:
    full = Throttle("CapacityExhausted", "E2B has no room for more sandboxes (cap 20)", 5.0)
    obs = observe(spec(replicas=1000), [sbx("a", 0)], healthy=["a"], creating=frozenset({1}))
    brief = decide(replace(obs, throttle=full))
    assert conditions(brief)["Reconciling"] == ("True", "CapacityExhausted")
    assert conditions(brief)["Degraded"][0] == "False"
    lasting = decide(replace(obs, throttle=replace(full, waited_seconds=31.0)))
    assert conditions(lasting)["Degraded"] == ("True", "CapacityExhausted")
    degraded = {c.type: c for c in lasting.status.conditions}["Degraded"]
    assert "cap 20" in degraded.message
    assert "CapacityExhausted" in [e.reason for e in lasting.events]  # one Warning


def test_e2b_coming_back_forgets_the_backoff() -> None:
    memory = after_create(Memory(), failed=True, budget=32, now=NOW, cap=60)
    memory = replace(memory, failures=7)
    back = recovered(memory)
    assert back.retry_creates_at is None and back.failures == 0 and back.create_failures == 0
    assert back.ramp == 1  # still one create at a time first, doubling
