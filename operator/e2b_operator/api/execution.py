"""E2BExecution: one run of a template's main script with a JSON input, as a resource."""

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, WithJsonSchema

from .base import K8sModel, StatusModel
from .credentials import Credentials
from .meta import Conditions, ObjectRef, Timestamp
from .rules import Rule, validations

RESULT_MAX_BYTES = 32 * 1024
"""status.result is kept only when its JSON text is at most this long."""
TAIL_CHARS = 4096
"""status.stdoutTail and status.stderrTail keep the last this many characters."""
IMMUTABLE = "spec is immutable once the execution has started; create a new E2BExecution"

AnyJSON = Annotated[
    Any,
    WithJsonSchema({"x-kubernetes-preserve-unknown-fields": True}),
]
"""Any JSON value (object, array, string, number, boolean)."""


class MainLog(K8sModel):
    """Which part of the main script's output (/app/main.log) an execution prints."""

    follow: bool = False
    """Keep printing what is appended, until timeoutSeconds, the execution is deleted or the
    sandbox goes away (like `kubectl logs -f`)."""
    from_line: int = Field(default=1, ge=1)
    """First line to print (1: from the start), so a follow can resume where one ended."""


@validations(
    Rule(
        "has(self.deploymentRef) != has(self.templateRef)",
        "set exactly one of deploymentRef (run in a ready sandbox of that deployment)"
        " or templateRef (run in a new sandbox from that template, killed after)",
    ),
    Rule(
        "!has(self.sandboxID) || has(self.deploymentRef)",
        "sandboxID pins a sandbox of deploymentRef; it needs deploymentRef",
        field_path=".sandboxID",
        reason="FieldValueForbidden",
    ),
    Rule(
        "!has(self.mainLog) || has(self.deploymentRef)",
        "mainLog reads the log of a deployment's sandbox; it needs deploymentRef",
        field_path=".mainLog",
        reason="FieldValueForbidden",
    ),
    Rule(
        "!has(self.mainLog) || !has(self.hook)",
        "set mainLog (read the main script's output) or hook (run a hook), not both",
        field_path=".mainLog",
        reason="FieldValueForbidden",
    ),
    Rule("self == oldSelf", IMMUTABLE),
)
class E2BExecutionSpec(K8sModel):
    """Desired run: where the main script runs and with which input."""

    deployment_ref: ObjectRef | None = None
    """Run in one of this E2BDeployment's ready sandboxes; exclusive with templateRef."""
    template_ref: ObjectRef | None = None
    """Run in a new sandbox from this E2BTemplate, killed afterwards; exclusive with
    deploymentRef."""
    sandbox_id: str | None = Field(default=None, min_length=1, max_length=253, alias="sandboxID")
    """Run in this sandbox of deploymentRef (it must be ready) instead of any ready one."""
    input: dict[str, Any] = Field(default_factory=dict)
    """JSON object given to the main script as argv[1]."""
    hook: Literal["healthCheck"] | None = None
    """Run this hook of the template (hooks.healthCheck) instead of the main script, e.g.
    for an on-demand health check of one sandbox; input is ignored, any output is fine and
    the run succeeds when the hook exits 0."""
    main_log: MainLog | None = None
    """Print the main script's output (/app/main.log) instead of running anything: what
    `kubectl e2b logs` creates."""
    timeout_seconds: int = Field(default=60, ge=1, le=3600)
    """Seconds the script may run (1-3600); it is killed after that and the run fails."""
    ttl_seconds_after_finished: int | None = Field(default=None, ge=0, le=31536000)
    """Delete the execution this many seconds after it finished; kept when unset."""
    credentials: Credentials | None = None
    """E2B credentials from a Secret in this namespace; the operator's own when unset. They
    must be the same as those of templateRef's E2BTemplate or deploymentRef's E2BDeployment."""


ExecutionPhase = Literal["Pending", "Running", "Succeeded", "Failed"]


class E2BExecutionStatus(StatusModel):
    """Observed state of an E2BExecution, written by the operator."""

    observed_generation: int | None = Field(default=None, ge=0)
    """metadata.generation last reconciled."""
    phase: ExecutionPhase | None = None
    """Pending, Running, Succeeded or Failed."""
    target: str | None = Field(default=None, max_length=300)
    """deployment/NAME or template/NAME, for the TARGET column."""
    sandbox_id: str | None = Field(default=None, max_length=253, alias="sandboxID")
    """E2B sandbox the script ran in."""
    ephemeral: bool | None = None
    """True when the sandbox was created for this execution (and killed after it)."""
    exit_code: int | None = None
    """Exit code of the main script; unset when it never ran or was killed."""
    result: AnyJSON = None
    """stdout parsed as JSON, when it is JSON of at most 32 KiB."""
    result_truncated: bool | None = None
    """True when stdout was JSON larger than 32 KiB, so result is not stored."""
    stdout_tail: str | None = Field(default=None, max_length=TAIL_CHARS)
    """Last 4 KiB of the script's stdout."""
    stderr_tail: str | None = Field(default=None, max_length=TAIL_CHARS)
    """Last 4 KiB of the script's stderr."""
    stdout_chars: int | None = Field(default=None, ge=0)
    """Characters the script has written to stdout so far (updated while it runs, at most
    every 0.1 s): a follower prints the part of stdoutTail it has not seen."""
    stderr_chars: int | None = Field(default=None, ge=0)
    """Characters the script has written to stderr so far, like stdoutChars."""
    start_time: Timestamp | None = None
    """When the script was started."""
    completion_time: Timestamp | None = None
    """When the execution finished (succeeded or failed)."""
    duration_seconds: float | None = Field(default=None, ge=0)
    """Wall-clock run time of the script in seconds."""
    reason: str | None = Field(default=None, max_length=128)
    """CamelCase cause of a failure, e.g. NonZeroExit, Timeout, InvalidOutput."""
    message: str | None = Field(default=None, max_length=32768)
    """Human-readable summary."""
    conditions: Conditions = Field(default_factory=list)
    """Ready (True when succeeded), Reconciling (while running) and Stalled (failed)."""


class E2BExecution(K8sModel):
    """One run of a template's main script in an E2B sandbox."""

    model_config = ConfigDict(extra="ignore")

    api_version: Literal["e2b.dev/v1alpha1"] = "e2b.dev/v1alpha1"
    kind: Literal["E2BExecution"] = "E2BExecution"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: E2BExecutionSpec
    status: E2BExecutionStatus | None = None
