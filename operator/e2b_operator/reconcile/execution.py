"""E2BExecution decisions: where a run goes, how it is wrapped, what its outcome means.

Pure functions over plain records; the handler does the I/O.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..api import E2BExecutionSpec, E2BExecutionStatus, Hooks
from ..api.execution import RESULT_MAX_BYTES, TAIL_CHARS
from ..api.layout import MAIN_LOG, main_shell
from .conditions import Want, merge
from .deployment import TemplateView
from .observed import CommandOutcome

KILL_GRACE_SECONDS = 5
"""After timeoutSeconds the script gets SIGTERM, and SIGKILL this much later."""
TIMEOUT_EXIT_CODES = (124, 137)
"""Exit codes of coreutils timeout: the command timed out (TERM) or was killed (KILL)."""
MAIN_LOG_PHASES = ("Starting", "Running", "Unhealthy")
"""Phases of a deployment's sandbox whose main log can be read (any live one)."""
PENDING_LIMIT_SECONDS = 600
"""An execution waiting for a ready sandbox or a template build fails after this long."""


@dataclass(frozen=True)
class Pick:
    """Where to run: an existing sandbox, a new one from a template ID, or not (yet)."""

    sandbox_id: str | None = None
    template_id: str | None = None
    reason: str = ""
    message: str = ""
    final: bool = False
    """True: fail the execution with reason/message; False without a target: wait."""

    @property
    def waiting(self) -> bool:
        return not (self.sandbox_id or self.template_id or self.final)


def target_text(spec: E2BExecutionSpec) -> str:
    """deployment/NAME or template/NAME."""
    if spec.deployment_ref is not None:
        return f"deployment/{spec.deployment_ref.name}"
    assert spec.template_ref is not None
    return f"template/{spec.template_ref.name}"


def accepted_phases(spec: E2BExecutionSpec) -> tuple[str, ...]:
    """Sandbox phases besides ready an execution may run in: a hook run checks a sandbox that
    failed its checks too; reading the main log works in any live sandbox."""
    if spec.main_log is not None:
        return MAIN_LOG_PHASES
    return ("Running", "Unhealthy") if spec.hook else ()


def pick_in_deployment(
    deployment: dict[str, Any] | None,
    name: str,
    pinned: str | None,
    accept: tuple[str, ...] = (),
) -> Pick:
    """A ready sandbox of the deployment (the pinned one, if any), or one in a phase of
    accept (see accepted_phases)."""
    if deployment is None:
        return Pick(
            reason="DeploymentNotFound", message=f"E2BDeployment {name!r} not found", final=True
        )
    status = deployment.get("status") or {}
    entries = status.get("sandboxes") or []
    ready = [
        s
        for s in sorted(entries, key=lambda s: s.get("index", 0))
        if (s.get("phase") == "Running" and s.get("healthy") is not False)
        or s.get("phase") in accept
    ]
    if pinned:
        if not any(s.get("sandboxID") == pinned for s in entries):
            return Pick(
                reason="SandboxNotFound",
                message=f"sandbox {pinned!r} is not part of E2BDeployment {name!r}",
                final=True,
            )
        ready = [s for s in ready if s.get("sandboxID") == pinned]
    if ready:
        return Pick(sandbox_id=ready[0]["sandboxID"])
    stalled = next((c for c in status.get("conditions") or [] if c.get("type") == "Stalled"), None)
    if stalled and stalled.get("status") == "True":
        return Pick(
            reason="DeploymentStalled",
            message=f"E2BDeployment {name!r} is stalled: {stalled.get('message', '')}",
            final=True,
        )
    which = f"sandbox {pinned}" if pinned else "a ready sandbox"
    return Pick(reason="WaitingForSandbox", message=f"waiting for {which} in {name!r}")


def pick_template(view: TemplateView | None, name: str) -> Pick:
    """A new sandbox from the template's current E2B build."""
    if view is None:
        return Pick(
            reason="TemplateNotFound", message=f"E2BTemplate {name!r} not found", final=True
        )
    if view.failed:
        return Pick(
            reason="TemplateFailed",
            message=f"E2BTemplate {name!r} failed to build: {view.message}",
            final=True,
        )
    if view.ready and view.template_id:
        return Pick(template_id=view.template_id)
    return Pick(reason="WaitingForTemplate", message=f"waiting for E2BTemplate {name!r} to build")


def command(runtime: str, spec: E2BExecutionSpec, hooks: Hooks | None = None) -> str:
    """The main script with the input as argv[1] (or the hook spec.hook names, `true` when
    the template has none; or tail of the main log), killed after timeoutSeconds."""
    if spec.main_log is not None:
        return main_log_command(spec)
    limit = f"timeout --kill-after={KILL_GRACE_SECONDS} {spec.timeout_seconds} "
    if spec.hook:
        hook = (hooks.health_check if hooks else None) or "true"
        return limit + shlex.join(["bash", "-c", hook])
    return limit + main_shell(runtime, json.dumps(spec.input))


def main_log_command(spec: E2BExecutionSpec) -> str:
    """tail of /app/main.log as the command's own process (exec), so killing it ends it. A
    follow (-F: waits for the file, survives truncation) ends with a sleep of
    timeoutSeconds (--pid), not under `timeout`, whose kill would orphan tail."""
    assert spec.main_log is not None
    tail_ = f"exec tail -n +{spec.main_log.from_line}"
    if not spec.main_log.follow:
        return f"{tail_} {MAIN_LOG}"
    return f"sleep {spec.timeout_seconds} & {tail_} -F --pid=$! {MAIN_LOG}"


def command_timeout(spec: E2BExecutionSpec) -> float:
    """How long the backend waits for the command: the script's limit plus margin."""
    return spec.timeout_seconds + KILL_GRACE_SECONDS + 10


def tail(text: str) -> str:
    return text[-TAIL_CHARS:]


def parse_output(stdout: str) -> tuple[bool, Any]:
    """(True, value) when stdout is JSON, or its last non-empty line is (logs before it)."""
    text = stdout.strip()
    candidates = [text]
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) > 1:
        candidates.append(lines[-1])
    for candidate in candidates:
        try:
            return True, json.loads(candidate)
        except ValueError:
            continue
    return False, None


def conditions(
    previous: E2BExecutionStatus | None,
    phase: str,
    reason: str,
    message: str,
    generation: int,
    now: datetime,
) -> list[Any]:
    """kstatus conditions: Ready on success, Reconciling while pending/running, Stalled on
    failure."""
    done = phase in ("Succeeded", "Failed")
    wanted = [
        Want("Ready", phase == "Succeeded", reason, message),
        Want("Reconciling", not done, reason, message),
        Want("Stalled", phase == "Failed", reason, message),
    ]
    return merge(previous.conditions if previous else [], wanted, generation=generation, now=now)


def progress_status(
    previous: E2BExecutionStatus | None,
    spec: E2BExecutionSpec,
    phase: str,
    reason: str,
    message: str,
    generation: int,
    now: datetime,
    **fields: Any,
) -> E2BExecutionStatus:
    """A Pending, Running or Failed-before-running status."""
    base = previous.model_dump() if previous else {}
    base.update(
        observed_generation=generation,
        phase=phase,
        target=target_text(spec),
        reason=reason,
        message=message,
        conditions=conditions(previous, phase, reason, message, generation, now),
        **fields,
    )
    if phase == "Failed" and not base.get("completion_time"):
        base["completion_time"] = now
    return E2BExecutionStatus.model_validate(base)


def outcome_status(
    running: E2BExecutionStatus,
    spec: E2BExecutionSpec,
    outcome: CommandOutcome,
    generation: int,
    now: datetime,
    **extra: Any,
) -> E2BExecutionStatus:
    """The final status from the command's outcome (`extra`: more status fields)."""
    ok_json, value = (False, None) if spec.main_log else parse_output(outcome.stdout)
    what = f"{spec.hook} hook" if spec.hook else "main log" if spec.main_log else "main script"
    if outcome.exit_code in TIMEOUT_EXIT_CODES:
        phase, reason = "Failed", "Timeout"
        message = f"{what} did not finish in {spec.timeout_seconds}s and was killed"
    elif outcome.exit_code != 0 or outcome.error:
        phase, reason = "Failed", "NonZeroExit"
        last = (outcome.stderr.strip().splitlines() or [outcome.error or ""])[-1]
        message = f"{what} exited {outcome.exit_code}: {last}"[:1024]
    elif spec.hook:
        phase, reason, message = "Succeeded", "Completed", f"{what} passed"
    elif spec.main_log:
        phase, reason, message = "Succeeded", "Completed", f"printed the {what}"
    elif not ok_json:
        phase, reason = "Failed", "InvalidOutput"
        message = "main script exited 0 but its stdout is not JSON"
    else:
        phase, reason, message = "Succeeded", "Completed", "main script printed its result"
    fields: dict[str, Any] = {
        **extra,
        "exit_code": None if reason == "Timeout" else outcome.exit_code,
        "stdout_tail": tail(outcome.stdout),
        "stderr_tail": tail(outcome.stderr),
        "completion_time": now,
    }
    if ok_json:
        size = len(json.dumps(value))
        if size <= RESULT_MAX_BYTES:
            fields["result"] = value
        else:
            fields["result_truncated"] = True
            message = (
                f"main script printed a {size}-byte JSON result; status.result keeps at most"
                f" {RESULT_MAX_BYTES} bytes, so it is not stored (write large results to a file)"
            )
    if running.start_time is not None:
        fields["duration_seconds"] = round((now - running.start_time).total_seconds(), 3)
    return progress_status(running, spec, phase, reason, message, generation, now, **fields)
