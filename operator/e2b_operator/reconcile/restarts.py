"""Per-instance replacement backoff, like a crash-looping container's. No I/O.

A sandbox replaced for a failure (its health check failing, its startup timing out, its
main script exiting as restartPolicy forbids) or gone without the operator killing it
(killed outside, expired, crashed right after its create) is one restart of its instance
(slot). The
slot's next sandbox is created at once after the first restart, then after 10 s, 20 s,
40 s, ... up to 5 minutes. A slot whose sandbox has been healthy for RESET_SECONDS starts
over. The records live in status.instances, so a restarted operator keeps the schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..api import E2BDeploymentStatus, InstanceStatus

FIRST_DELAY_SECONDS = 10.0
MAX_DELAY_SECONDS = 300.0
RESET_SECONDS = 600.0
FAILURE_REASONS = ("Unhealthy", "StartupTimeout", "MainScriptExited")
"""Why a sandbox is retired that counts as a restart of its slot."""
VANISHED = "Vanished"
"""The reason of a restart whose sandbox disappeared without the operator killing it."""


def delay(restarts: int) -> float:
    """Seconds between the ``restarts``-th replacement and the slot's next create."""
    if restarts <= 1:
        return 0.0
    return min(MAX_DELAY_SECONDS, FIRST_DELAY_SECONDS * 2 ** min(restarts - 2, 16))


@dataclass(frozen=True)
class Restarts:
    """One slot's failures in a row."""

    count: int
    reason: str
    message: str
    at: datetime
    sandbox_id: str = ""
    """The sandbox last counted (a retire repeated after a failed kill counts once)."""
    exit_code: int | None = None

    @property
    def next_at(self) -> datetime:
        return self.at + timedelta(seconds=delay(self.count))

    def waiting(self, now: datetime) -> float:
        """Seconds until the slot may be filled again (0: now)."""
        return max((self.next_at - now).total_seconds(), 0.0)

    def status(self, index: int, now: datetime) -> InstanceStatus:
        return InstanceStatus(
            index=index,
            restarts=self.count,
            reason=self.reason,
            message=self.message[:1024] or None,
            exit_code=self.exit_code,
            last_restart_time=self.at,
            next_attempt_time=self.next_at if self.waiting(now) else None,
        )


def restarted(
    previous: Restarts | None,
    *,
    sandbox_id: str,
    reason: str,
    message: str,
    now: datetime,
    exit_code: int | None = None,
) -> Restarts:
    """The slot's record after its sandbox ``sandbox_id`` was retired for a failure."""
    if previous is not None and previous.sandbox_id == sandbox_id:
        return previous
    count = (previous.count if previous else 0) + 1
    return Restarts(count, reason, message, now, sandbox_id, exit_code)


def from_status(status: E2BDeploymentStatus | None) -> dict[int, Restarts]:
    """After an operator restart: the records the last status showed."""
    return {
        i.index: Restarts(
            i.restarts, i.reason, i.message or "", i.last_restart_time, "", i.exit_code
        )
        for i in (status.instances if status else [])
    }
