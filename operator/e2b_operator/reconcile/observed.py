"""Plain records of what the operator observed in E2B: the input of every decision."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

SandboxState = Literal["running", "paused"]

MANAGED_BY = "e2b-operator"
"""Metadata keys the operator puts on every sandbox, so it can find and adopt them."""
META_MANAGED_BY = "managed-by"
META_NAMESPACE = "k8s-namespace"
META_DEPLOYMENT = "k8s-deployment"
META_DEPLOYMENT_UID = "k8s-deployment-uid"
META_TEMPLATE_HASH = "template-hash"
META_INDEX = "instance-index"


@dataclass(frozen=True)
class ObservedSandbox:
    """One sandbox as listed by E2B."""

    sandbox_id: str
    state: SandboxState
    metadata: dict[str, str] = field(default_factory=dict)
    started_at: datetime | None = None
    end_at: datetime | None = None
    confirmed: bool = True
    """False while its state is the one a pause or resume returned, not yet listed so."""

    @property
    def index(self) -> int:
        try:
            return int(self.metadata.get(META_INDEX, "-1"))
        except ValueError:
            return -1

    @property
    def template_hash(self) -> str:
        return self.metadata.get(META_TEMPLATE_HASH, "")


@dataclass(frozen=True)
class BuildProgress:
    """An E2B template build as last polled."""

    template_id: str
    build_id: str
    status: Literal["waiting", "building", "ready", "error"]
    logs: tuple[str, ...] = ()
    reason: str = ""


@dataclass(frozen=True)
class CommandOutcome:
    """The result of one command run in a sandbox."""

    exit_code: int
    stdout: str = ""
    stderr: str = ""
    error: str = ""
    timed_out: bool = False
    """It ran past its timeout (and was abandoned)."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.error


@dataclass(frozen=True)
class Problem:
    """Why an object cannot proceed: a condition reason, a message a user can act on, and
    whether it waits for the user (stalled) or for a retry."""

    reason: str
    message: str
    stalled: bool
    fault: bool = True
    """False for a wait that is progress (a template still building): Reconciling=True,
    not Degraded (kstatus reads it as InProgress, Argo CD as Progressing)."""


@dataclass(frozen=True)
class Throttle:
    """Creates of a deployment waiting on E2B's limits: `RateLimited` (the create rate) or
    `CapacityExhausted` (the concurrent-sandbox cap), for how long, and E2B's word on it."""

    reason: Literal["RateLimited", "CapacityExhausted"]
    message: str
    waited_seconds: float
