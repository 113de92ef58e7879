"""E2BDeployment: N sandboxes from one E2BTemplate, rolled and health-checked like a Deployment."""

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from .base import K8sModel, StatusModel
from .credentials import Credentials
from .meta import MAX_ENV, Conditions, EnvVar, ListMap, ObjectRef, Timestamp
from .rules import Rule, validations

SELECTOR_LABEL = "e2b.dev/deployment"
MIN_TIMEOUT_SECONDS = 30
"""Shorter sandbox timeouts would mean refreshing every sandbox every few seconds and losing
them all to any operator restart."""

IntOrPercent = Annotated[
    Annotated[int, Field(ge=0)] | Annotated[str, Field(pattern=r"^(100|[1-9]?[0-9])%$")],
    Field(
        json_schema_extra={
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "minimum": 0,
            "pattern": r"^(100|[1-9]?[0-9])%$",
        }
    ),
]
"""A count (>= 0) or a percentage of replicas such as 25%."""


@validations(
    Rule(
        "!(string(self.maxUnavailable) in ['0', '0%'] && string(self.maxSurge) in ['0', '0%'])",
        "maxUnavailable and maxSurge must not both be 0: the rollout could never make progress",
    )
)
class RollingUpdate(K8sModel):
    """How many sandboxes may be missing or extra while a rollout replaces them."""

    max_unavailable: IntOrPercent = "25%"
    """Sandboxes that may be unavailable during a rollout: a count or a percentage (floor)."""
    max_surge: IntOrPercent = "25%"
    """Sandboxes created above replicas during a rollout: a count or a percentage (rounded up)."""


class Strategy(K8sModel):
    """How sandboxes are replaced when the template or spec changes."""

    type: Literal["RollingUpdate", "Recreate"] = "RollingUpdate"
    """RollingUpdate replaces sandboxes gradually; Recreate stops all before starting new ones."""
    rolling_update: RollingUpdate = Field(default_factory=RollingUpdate)
    """Rolling update bounds; used when type is RollingUpdate."""


@validations(
    Rule(
        "self.timeoutSeconds <= self.intervalSeconds",
        "healthCheck.timeoutSeconds must not exceed intervalSeconds",
        field_path=".timeoutSeconds",
    )
)
class HealthCheck(K8sModel):
    """Periodic sandbox health checks (the template's hooks.healthCheck, or liveness)."""

    interval_seconds: int = Field(default=30, ge=5, le=3600)
    """Seconds between checks (5-3600)."""
    failure_threshold: int = Field(default=3, ge=1, le=100)
    """Consecutive failures before a sandbox is replaced (1-100)."""
    timeout_seconds: int = Field(default=10, ge=1, le=300)
    """Seconds before one check counts as failed (1-300)."""
    startup_timeout_seconds: int = Field(default=120, ge=1, le=3600)
    """Seconds a new sandbox has to pass its first check (1-3600). Until then it is checked
    on a fast schedule (after 0.25 s, then every 0.5 s), like a startupProbe, and its
    failures do not count toward failureThreshold; past it, it is replaced."""


class InstanceRestart(K8sModel):
    """A request to re-create one instance (like kubectl rollout restart, for one slot)."""

    index: int = Field(ge=0, le=100000)
    """Instance index to re-create."""
    restarted_at: Timestamp
    """When it was asked for; a new time re-creates the instance again."""


@validations(
    Rule(
        "!has(self.instanceConfigs) || !has(self.shardBy)",
        "instanceConfigs and shardBy are mutually exclusive: list per-instance configs"
        " or shard one list-valued config key, not both",
        field_path=".shardBy",
        reason="FieldValueForbidden",
    )
)
class E2BDeploymentSpec(K8sModel):
    """Desired state of an E2BDeployment."""

    template_ref: ObjectRef
    """The E2BTemplate (same namespace) every sandbox is created from."""
    replicas: int = Field(default=1, ge=0, le=1000)
    """Number of sandboxes (0-1000); scalable with kubectl scale."""
    env: Annotated[list[EnvVar], ListMap("name")] = Field(default_factory=list, max_length=MAX_ENV)
    """Environment variables for every sandbox; names must be unique."""
    config: dict[str, Any] | None = None
    """JSON configuration given to every instance."""
    instance_configs: list[dict[str, Any]] | None = Field(default=None, max_length=1000)
    """Per-instance configuration merged over config: item i goes to instance i;
    instances beyond the list get config alone."""
    shard_by: str | None = Field(default=None, min_length=1, max_length=253)
    """Key of a list in config whose items are dealt round-robin across instances,
    e.g. symbols: [AAPL, MSFT, GOOG] over 2 instances gives [AAPL, GOOG] and [MSFT]."""
    retired_instances: list[Annotated[int, Field(ge=0, le=100000)]] = Field(
        default_factory=list, max_length=1000
    )
    """Instance indices removed one by one (TemplateDeployer.cleanup of one sandbox): they are
    skipped, so the other instances keep their index, config and sandbox. The instances are
    the first `replicas` indices not listed here."""
    instance_restarts: Annotated[list[InstanceRestart], ListMap("index")] = Field(
        default_factory=list, max_length=1000
    )
    """Instances to re-create (TemplateDeployer.update_template of a sandbox to its own
    template): each listed instance is replaced once per restartedAt, the others are not."""
    timeout_seconds: int = Field(default=300, ge=MIN_TIMEOUT_SECONDS, le=86400)
    """Sandbox timeout in seconds (30-86400): E2B kills a sandbox this long after its last
    refresh. The operator refreshes it once less than half is left, so at most once per
    timeoutSeconds/2 per sandbox, and sandboxes outlive an operator restart shorter than that."""
    paused: bool = False
    """Pause every sandbox (E2B keeps its memory and files); setting it back to false
    resumes them. Nothing is created, replaced or health-checked while paused."""
    strategy: Strategy = Field(default_factory=Strategy)
    """How sandboxes are replaced on change."""
    health_check: HealthCheck = Field(default_factory=HealthCheck)
    """Health checking of running sandboxes."""
    restart_policy: Literal["OnFailure", "Always", "Never"] = "OnFailure"
    """What a main script that exits does to its sandbox: OnFailure replaces the sandbox when
    the script exits non-zero (0 means it completed), Always when it exits at all, Never only
    reports the exit code. Replacements back off per instance (status.instances)."""
    credentials: Credentials | None = None
    """E2B credentials from a Secret in this namespace; the operator's own when unset. They
    must be the same as the template's (spec.credentials of the E2BTemplate)."""
    progress_deadline_seconds: int = Field(default=600, ge=10, le=86400)
    """Seconds a rollout may go without progress (a sandbox created, ready or removed)
    before the deployment reports Stalled with reason ProgressDeadlineExceeded; it keeps
    trying meanwhile, like a Deployment's progressDeadlineSeconds."""


SandboxPhase = Literal["Starting", "Running", "Unhealthy", "Paused", "Terminating"]


class SandboxStatus(StatusModel):
    """One sandbox instance of the deployment."""

    sandbox_id: str = Field(max_length=253, alias="sandboxID")
    """E2B sandbox ID."""
    index: int = Field(ge=0, le=100000)
    """Instance index; selects the per-instance config. During a rollout an old and a new
    sandbox can share an index."""
    phase: SandboxPhase = "Starting"
    """Starting, Running, Unhealthy, Paused or Terminating."""
    healthy: bool | None = None
    """Result of the last health check."""
    template_hash: str | None = Field(default=None, max_length=128)
    """Hash of the template and instance spec the sandbox was created from."""
    started_at: Timestamp | None = None
    """When the sandbox was created."""
    last_health_transition_time: Timestamp | None = None
    """When healthy last changed."""
    consecutive_failures: int = Field(default=0, ge=0)
    """Health check failures in a row."""
    message: str | None = Field(default=None, max_length=1024)
    """Last error or state detail."""
    main_exit_code: int | None = None
    """The main script's exit code once it has exited (seen at a health check)."""


class InstanceStatus(StatusModel):
    """An instance whose sandboxes were replaced for failures, like a crash-looping
    container: each replacement in a row waits longer (10 s doubling to 5 min after the
    first); a sandbox healthy for 10 minutes clears it."""

    index: int = Field(ge=0, le=100000)
    """Instance index."""
    restarts: int = Field(ge=0)
    """Sandboxes of this instance replaced for a failure in a row."""
    reason: str = Field(max_length=64)
    """Why the last one was replaced: Unhealthy, StartupTimeout or MainScriptExited."""
    message: str | None = Field(default=None, max_length=1024)
    """What failed (Secret values masked)."""
    exit_code: int | None = None
    """The main script's exit code, when that was the reason."""
    last_restart_time: Timestamp
    """When the last one was replaced."""
    next_attempt_time: Timestamp | None = None
    """When its next sandbox is created, while it waits."""


DeploymentPhase = Literal["Pending", "Progressing", "Available", "Degraded", "Paused", "Failed"]


class E2BDeploymentStatus(StatusModel):
    """Observed state of an E2BDeployment, written by the operator."""

    observed_generation: int | None = Field(default=None, ge=0)
    """metadata.generation last reconciled."""
    phase: DeploymentPhase | None = None
    """Pending, Progressing, Available, Degraded, Paused or Failed."""
    replicas: int = Field(default=0, ge=0)
    """Sandboxes that exist (the scale subresource's status replicas)."""
    ready_replicas: int = Field(default=0, ge=0)
    """Sandboxes that are running and healthy."""
    updated_replicas: int = Field(default=0, ge=0)
    """Sandboxes created from the current template and spec."""
    updated_ready_replicas: int = Field(default=0, ge=0)
    """Updated sandboxes that are also ready: the rollout's progress."""
    available_replicas: int = Field(default=0, ge=0)
    """Ready sandboxes counted as available to serve."""
    ready: str | None = Field(default=None, max_length=32, pattern=r"^[0-9]+/[0-9]+$")
    """readyReplicas/replicas as text for the READY column, e.g. 2/3."""
    selector: str | None = Field(default=None, max_length=1024)
    """Label selector of the deployment's objects, for the scale subresource."""
    template_id: str | None = Field(default=None, max_length=253, alias="templateID")
    """E2B template ID the current sandboxes are created from."""
    conditions: Conditions = Field(default_factory=list)
    """Ready, Reconciling, Stalled and Progressing conditions."""
    sandboxes: Annotated[list[SandboxStatus], ListMap("sandboxID")] = Field(
        default_factory=list, max_length=2000
    )
    """Per-sandbox state, keyed by sandboxID."""
    instances: Annotated[list[InstanceStatus], ListMap("index")] = Field(
        default_factory=list, max_length=1000
    )
    """Instances replaced for failures and their backoff, keyed by index."""


def selector_for(name: str) -> str:
    """status.selector value for a deployment named `name`."""
    return f"{SELECTOR_LABEL}={name}"


def ready_text(ready: int, desired: int) -> str:
    """status.ready value for the READY printer column."""
    return f"{ready}/{desired}"


class E2BDeployment(K8sModel):
    """A set of E2B sandboxes created from one E2BTemplate."""

    model_config = ConfigDict(extra="ignore")

    api_version: Literal["e2b.dev/v1alpha1"] = "e2b.dev/v1alpha1"
    kind: Literal["E2BDeployment"] = "E2BDeployment"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: E2BDeploymentSpec
    status: E2BDeploymentStatus | None = None
