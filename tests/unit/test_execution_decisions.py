"""Pure E2BExecution decisions: target picking, command wrapping, outcome -> status."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from e2b_operator.api import E2BExecutionSpec, Hooks, problems
from e2b_operator.api.execution import RESULT_MAX_BYTES, TAIL_CHARS, MainLog
from e2b_operator.reconcile import execution as rx
from e2b_operator.reconcile.deployment import TemplateView
from e2b_operator.reconcile.observed import CommandOutcome

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
SPEC = E2BExecutionSpec.from_wire({"deploymentRef": {"name": "d"}, "input": {"a": "it's"}})


def running() -> rx.E2BExecutionStatus:
    return rx.progress_status(
        None,
        SPEC,
        "Running",
        "Running",
        "",
        1,
        NOW - timedelta(seconds=2),
        sandbox_id="s1",
        start_time=NOW - timedelta(seconds=2),
    )


def finish(outcome: CommandOutcome) -> rx.E2BExecutionStatus:
    return rx.outcome_status(running(), SPEC, outcome, 1, NOW)


def test_success_parses_json_and_sets_kstatus_conditions() -> None:
    st = finish(CommandOutcome(0, 'log line\n{"ok": true}\n', ""))
    assert st.phase == "Succeeded" and st.result == {"ok": True} and st.exit_code == 0
    assert st.duration_seconds == 2.0 and st.completion_time == NOW
    cond = {c.type: c.status for c in st.conditions}
    assert cond == {"Ready": "True", "Reconciling": "False", "Stalled": "False"}
    wire = {
        "apiVersion": "e2b.dev/v1alpha1",
        "kind": "E2BExecution",
        "metadata": {"name": "x"},
        "spec": SPEC.wire(),
        "status": st.wire(),
    }
    assert problems("E2BExecution", wire) == []


def test_failures() -> None:
    crash = finish(CommandOutcome(2, "partial", "Traceback\nValueError: bad"))
    assert crash.phase == "Failed" and crash.reason == "NonZeroExit"
    assert crash.message == "main script exited 2: ValueError: bad"
    assert {c.type: c.status for c in crash.conditions}["Stalled"] == "True"
    text = finish(CommandOutcome(0, "hello", ""))
    assert text.reason == "InvalidOutput" and text.stdout_tail == "hello" and text.result is None
    slow = finish(CommandOutcome(124, "", ""))
    assert slow.reason == "Timeout" and slow.exit_code is None


def test_bounds() -> None:
    big = json.dumps({"x": "y" * RESULT_MAX_BYTES})
    st = finish(CommandOutcome(0, big, "e" * (TAIL_CHARS * 2) + "the end"))
    assert st.result is None and st.result_truncated is True
    assert f"{len(big)}-byte JSON result" in st.message and str(RESULT_MAX_BYTES) in st.message
    assert len(st.stdout_tail) == TAIL_CHARS and len(st.stderr_tail) == TAIL_CHARS
    assert st.stdout_tail == big[-TAIL_CHARS:] and st.stderr_tail.endswith("the end")  # tails


def test_command_has_a_hard_timeout_and_quoted_input() -> None:
    cmd = rx.command("python3.11", SPEC)
    assert cmd.startswith("timeout --kill-after=5 60 python3 /app/main.py ")
    assert "it'\"'\"'s" in cmd  # the input is one shell-quoted argv[1]
    assert rx.command("node20", SPEC).split()[3:5] == ["node", "/app/main.js"]
    # the call waits past the command's own timeout and kill, so a timeout is reported as one
    assert rx.command_timeout(SPEC) > SPEC.timeout_seconds + 5


def test_picks() -> None:
    dep = {
        "status": {
            "sandboxes": [
                {"sandboxID": "a3", "index": 3, "phase": "Running", "healthy": True},
                {"sandboxID": "a", "index": 1, "phase": "Running", "healthy": True},
                {"sandboxID": "b", "index": 4, "phase": "Unhealthy", "healthy": False},
                # its last check failed, fewer times than the threshold: not ready either
                {"sandboxID": "f", "index": 0, "phase": "Running", "healthy": False},
                {"sandboxID": "c", "index": 2, "phase": "Starting"},
            ]
        }
    }
    assert rx.pick_in_deployment(dep, "d", None).sandbox_id == "a"  # lowest ready index
    assert rx.pick_in_deployment(dep, "d", "c").waiting
    assert rx.pick_in_deployment(dep, "d", "zz").reason == "SandboxNotFound"
    assert rx.pick_in_deployment(None, "d", None).final
    stalled = {"status": {"conditions": [{"type": "Stalled", "status": "True", "message": "m"}]}}
    pick = rx.pick_in_deployment(stalled, "d", None)
    assert pick.reason == "DeploymentStalled" and pick.final
    assert rx.pick_template(None, "t").reason == "TemplateNotFound"
    assert rx.pick_template(TemplateView("t", ready=False), "t").waiting
    assert rx.pick_template(TemplateView("t", ready=False, failed=True), "t").final
    assert rx.pick_template(TemplateView("t", ready=True, template_id="tid"), "t").template_id


def test_a_health_check_hook_run_succeeds_on_exit_zero_whatever_it_prints() -> None:
    spec = SPEC.model_copy(update={"hook": "healthCheck"})
    hooks = Hooks(health_check="curl -f http://localhost:8080/health || exit 1")
    assert rx.command("python3.11", spec, hooks) == (
        "timeout --kill-after=5 60 bash -c 'curl -f http://localhost:8080/health || exit 1'"
    )
    assert rx.command("python3.11", spec).endswith(" bash -c true")  # no hook: reachable
    ok = rx.outcome_status(running(), spec, CommandOutcome(0, "OK", ""), 1, NOW)
    assert (ok.phase, ok.reason, ok.message) == (
        "Succeeded",
        "Completed",
        "healthCheck hook passed",
    )
    bad = rx.outcome_status(running(), spec, CommandOutcome(7, "", "refused"), 1, NOW)
    assert (bad.phase, bad.message) == ("Failed", "healthCheck hook exited 7: refused")
    assert problems(
        "E2BExecution",
        {"apiVersion": "e2b.dev/v1alpha1", "kind": "E2BExecution", "metadata": {"name": "x"},
         "spec": {"deploymentRef": {"name": "d"}, "hook": "preStart"}},
    )  # fmt: skip


def test_a_main_log_run_tails_the_log_as_its_own_process_and_any_text_succeeds() -> None:
    read = SPEC.model_copy(update={"main_log": MainLog()})
    assert rx.command("python3.11", read) == "exec tail -n +1 /app/main.log"
    follow = E2BExecutionSpec.from_wire(
        {
            "deploymentRef": {"name": "d"},
            "mainLog": {"follow": True, "fromLine": 42},
            "timeoutSeconds": 3600,
        }
    )
    # No `timeout` parent: killing the command's process (a deleted execution) ends tail.
    assert rx.command("node20", follow) == (
        "sleep 3600 & exec tail -n +42 -F --pid=$! /app/main.log"
    )
    ok = rx.outcome_status(running(), read, CommandOutcome(0, "not json", ""), 1, NOW)
    assert (ok.phase, ok.message, ok.result) == ("Succeeded", "printed the main log", None)
    gone = rx.outcome_status(running(), read, CommandOutcome(1, "", "tail: cannot open"), 1, NOW)
    assert (gone.phase, gone.message) == ("Failed", "main log exited 1: tail: cannot open")


def test_a_main_log_is_read_in_any_live_sandbox_of_a_deployment() -> None:
    dep = {
        "status": {
            "sandboxes": [
                {"sandboxID": "b", "index": 0, "phase": "Unhealthy", "healthy": False},
                {"sandboxID": "c", "index": 2, "phase": "Starting"},
                {"sandboxID": "p", "index": 3, "phase": "Paused"},
            ]
        }
    }
    logs = rx.accepted_phases(SPEC.model_copy(update={"main_log": MainLog()}))
    assert rx.pick_in_deployment(dep, "d", "c", logs).sandbox_id == "c"
    assert rx.pick_in_deployment(dep, "d", "b", logs).sandbox_id == "b"
    assert rx.pick_in_deployment(dep, "d", "p", logs).waiting
    assert rx.pick_in_deployment(dep, "d", "c").waiting  # the main script needs a ready one
    wire = lambda spec: {  # noqa: E731
        "apiVersion": "e2b.dev/v1alpha1",
        "kind": "E2BExecution",
        "metadata": {"name": "x"},
        "spec": spec,
    }
    assert problems("E2BExecution", wire({"templateRef": {"name": "t"}, "mainLog": {}})) == [
        "spec.mainLog: mainLog reads the log of a deployment's sandbox; it needs deploymentRef"
    ]
    both = {"deploymentRef": {"name": "d"}, "mainLog": {}, "hook": "healthCheck"}
    assert any("not both" in p for p in problems("E2BExecution", wire(both)))
    bad = {"deploymentRef": {"name": "d"}, "mainLog": {"fromLine": 0}}
    assert any("fromLine" in p for p in problems("E2BExecution", wire(bad)))
