"""Failure-driven replacements back off per instance; the main script's exit follows
restartPolicy. Pure decisions, step by step."""

from __future__ import annotations

from datetime import timedelta

import pytest

from e2b_operator.api import E2BDeploymentStatus
from e2b_operator.reconcile.deployment import Memory, decide
from e2b_operator.reconcile.health import Health, probe_command, read_probe
from e2b_operator.reconcile.observed import CommandOutcome, ObservedSandbox, Problem
from e2b_operator.reconcile.restarts import MAX_DELAY_SECONDS, RESET_SECONDS, delay, restarted
from unit.test_reconcile_deployment import NOW, conditions, observe, sbx, spec


def failing(sid: str) -> Health:
    return Health(healthy=False, failures=3, passed=True, message="health check exited 1: no")


def test_the_schedule_is_at_once_then_doubling_to_a_cap() -> None:
    assert [delay(n) for n in range(1, 7)] == [0, 10, 20, 40, 80, 160]
    assert delay(50) == MAX_DELAY_SECONDS


def test_an_instance_failing_again_and_again_waits_longer_each_time() -> None:
    sp, memory, now = spec(replicas=1), Memory(), NOW
    plan = decide(observe(sp, [sbx("a", 0)], health={"a": failing("a")}, now=now), memory)
    assert [why for _, why in plan.delete] == ["Unhealthy"] and plan.create == [0]
    assert plan.status.instances[0].restarts == 1
    plan = decide(observe(sp, [sbx("b", 0)], health={"b": failing("b")}, now=now), plan.memory)
    assert [s.sandbox_id for s, _ in plan.delete] == ["b"] and plan.create == []
    entry = plan.status.instances[0]
    assert entry.restarts == 2 and entry.reason == "Unhealthy"
    assert entry.next_attempt_time == now + timedelta(seconds=10)
    waiting = decide(observe(sp, [], now=now + timedelta(seconds=5)), plan.memory)
    assert waiting.create == [] and waiting.wait == pytest.approx(5)
    assert conditions(waiting)["Degraded"] == ("True", "InstanceBackOff")
    assert conditions(waiting)["Ready"][0] == "False"
    later = decide(observe(sp, [], now=now + timedelta(seconds=10)), waiting.memory)
    assert later.create == [0] and later.status.instances[0].next_attempt_time is None


def test_a_restart_message_is_cut_to_1024_characters() -> None:
    long = restarted(None, sandbox_id="a", reason="Unhealthy", message="x" * 5000, now=NOW)
    assert long.status(0, NOW).message == "x" * 1024
    empty = restarted(None, sandbox_id="b", reason="Unhealthy", message="", now=NOW)
    assert empty.status(0, NOW).message is None


def test_a_retire_repeated_after_a_failed_kill_counts_once() -> None:
    sp = spec(replicas=1)
    first = decide(observe(sp, [sbx("a", 0)], health={"a": failing("a")}))
    again = decide(observe(sp, [sbx("a", 0)], health={"a": failing("a")}), first.memory)
    assert again.status.instances[0].restarts == 1


def test_a_long_healthy_sandbox_clears_its_instance_record() -> None:
    sp = spec(replicas=1)
    plan = decide(observe(sp, [sbx("a", 0)], health={"a": failing("a")}))
    healthy = Health(healthy=True, passed=True, since=NOW)
    box = sbx("b", 0)
    soon = decide(
        observe(sp, [box], health={"b": healthy}, now=NOW + timedelta(seconds=60)), plan.memory
    )
    assert soon.status.instances[0].restarts == 1
    late = NOW + timedelta(seconds=RESET_SECONDS + 1)
    cleared = decide(observe(sp, [box], health={"b": healthy}, now=late), soon.memory)
    assert cleared.status.instances == []


def test_backoff_survives_an_operator_restart_through_status() -> None:
    sp = spec(replicas=1)
    first = decide(observe(sp, [sbx("a", 0)], health={"a": failing("a")}))
    second = decide(observe(sp, [sbx("b", 0)], health={"b": failing("b")}), first.memory)
    previous = E2BDeploymentStatus.from_wire(second.status.wire())
    fresh = decide(observe(sp, [], previous=previous, now=NOW + timedelta(seconds=3)))
    assert fresh.create == [] and fresh.status.instances[0].restarts == 2


def test_always_failing_checks_create_logarithmically_few_sandboxes() -> None:
    """An hour of a check that never passes (startup timeout 5 s): creates grow with the
    log of time until the cap, then one per 5 minutes, not one per startup timeout."""
    sp = spec(replicas=1, healthCheck={"startupTimeoutSeconds": 5})
    memory, boxes, creates, serial = Memory(), [], 0, 0
    for step in range(3600):
        now = NOW + timedelta(seconds=step)
        health = {b.sandbox_id: Health().record(False, "no", now) for b in boxes}
        plan = decide(observe(sp, boxes, health=health, now=now), memory)
        memory = plan.memory
        gone = {s.sandbox_id for s, _ in plan.delete}
        boxes = [b for b in boxes if b.sandbox_id not in gone]
        for index in plan.create:
            serial += 1
            creates += 1
            meta = {"instance-index": str(index), "template-hash": "new"}
            boxes.append(ObservedSandbox(f"s{serial}", "running", meta, started_at=now))
    assert creates <= 20, creates  # without backoff: 3600 / 6 = 600


@pytest.mark.parametrize(
    ("policy", "code", "replaced"),
    [
        ("OnFailure", 1, True),
        ("OnFailure", 0, False),
        ("Always", 0, True),
        ("Never", 1, False),
    ],
)
def test_a_main_script_exit_follows_restart_policy(policy: str, code: int, replaced: bool) -> None:
    sp = spec(replicas=1, restartPolicy=policy)
    health = {"a": Health(healthy=True, passed=True, main_exit=code)}
    plan = decide(observe(sp, [sbx("a", 0)], health=health))
    assert [why for _, why in plan.delete] == (["MainScriptExited"] if replaced else [])
    assert plan.status.sandboxes[0].main_exit_code == code
    if replaced:
        entry = plan.status.instances[0]
        assert entry.exit_code == code and entry.reason == "MainScriptExited"
        assert f"exited with code {code}" in (entry.message or "")
        assert plan.status.ready_replicas == 0
    else:
        assert plan.status.ready_replicas == 1 and plan.status.instances == []


def test_the_probe_reports_the_main_exit_apart_from_the_check() -> None:
    command = probe_command("test -f /app/main.py")
    assert "/app/main.exit" in command and command.endswith("test -f /app/main.py")
    outcome, code = read_probe(CommandOutcome(1, stdout="E2B_MAIN_EXIT=3\nout", stderr="err"))
    assert code == 3 and outcome == CommandOutcome(1, stdout="out", stderr="err")
    running = CommandOutcome(0, stdout="fine")
    assert read_probe(running) == (running, None)
    assert read_probe(CommandOutcome(0, stdout="E2B_MAIN_EXIT=\n"))[1] is None


def _shown(plan) -> E2BDeploymentStatus:
    """The status as the next pass reads it back (what the last pass wrote)."""
    return E2BDeploymentStatus.from_wire(plan.status.wire())


def test_a_sandbox_that_keeps_vanishing_backs_off_like_a_failing_one() -> None:
    sp = spec(replicas=2)
    running = decide(observe(sp, [sbx("a", 0), sbx("b", 1)], healthy=["a", "b"]))
    assert running.status.instances == []
    # "a" is gone from the listing though the operator never killed it: refilled at once.
    gone = decide(
        observe(sp, [sbx("b", 1)], healthy=["b"], previous=_shown(running)), running.memory
    )
    assert gone.create == [0]
    entry = gone.status.instances[0]
    assert (entry.index, entry.restarts, entry.reason) == (0, 1, "Vanished")
    assert "sandbox a disappeared" in (entry.message or "")
    refilled = decide(
        observe(sp, [sbx("a2", 0), sbx("b", 1)], healthy=["a2", "b"], previous=_shown(gone)),
        gone.memory,
    )
    # Its replacement vanishes too: the next one waits (10 s), with the reason in status.
    again = decide(
        observe(sp, [sbx("b", 1)], healthy=["b"], previous=_shown(refilled)), refilled.memory
    )
    assert again.create == []
    entry = again.status.instances[0]
    assert entry.restarts == 2 and entry.reason == "Vanished"
    assert entry.next_attempt_time == NOW + timedelta(seconds=delay(2))
    assert conditions(again)["Degraded"] == ("True", "InstanceBackOff")
    # The same absence seen again is the same restart, not another one.
    still = decide(observe(sp, [sbx("b", 1)], healthy=["b"], previous=_shown(again)), again.memory)
    assert still.status.instances[0].restarts == 2 and still.create == []


def test_sandboxes_the_operator_retired_or_cannot_list_do_not_count_as_vanished() -> None:
    sp = spec(replicas=1)
    both = [sbx("a", 0), sbx("b", 1)]
    scaled = decide(observe(sp, both, healthy=["a", "b"]))  # b: ScaledDown, Terminating
    after = decide(observe(sp, [sbx("a", 0)], healthy=["a"], previous=_shown(scaled)))
    assert after.status.instances == []
    old = sbx("old", 0, hash_="old")
    rolled = decide(observe(sp, [old, sbx("new", 0)], healthy=["old", "new"]))
    assert [(s.sandbox_id, why) for s, why in rolled.delete] == [("old", "Replaced")]
    done = decide(observe(sp, [sbx("new", 0)], healthy=["new"], previous=_shown(rolled)))
    assert done.status.instances == []
    # Scaled down to 0 while its sandbox went: the slot is not wanted any more.
    shrunk = decide(observe(spec(replicas=0), [], previous=_shown(after)))
    assert shrunk.status.instances == []
    # E2B could not be listed: the sandboxes the status showed are kept, none counted.
    outage = Problem("BackendUnreachable", "cannot reach E2B", stalled=False)
    blind = decide(
        observe(sp, [], previous=_shown(after), backend_error=outage), Memory(failures=1)
    )
    assert blind.status.instances == [] and blind.create == []
