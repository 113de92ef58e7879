"""Health of one sandbox across checks: startup probing, consecutive failures, transitions.

Until its first check passes a sandbox is *starting*: it is checked on a fast schedule
(STARTUP_FIRST_DELAY seconds, then STARTUP_PERIOD), as a Kubernetes startupProbe does, and
its failures do not count toward the failure threshold; after that, every `interval`
seconds. A check runs a command in the sandbox (envd), not a call to E2B's control plane.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

STARTUP_FIRST_DELAY = 0.25
STARTUP_PERIOD = 0.5


@dataclass(frozen=True)
class Health:
    """The running tally of a sandbox's health checks."""

    healthy: bool | None = None
    failures: int = 0
    since: datetime | None = None
    message: str = ""
    checked_at: datetime | None = None
    passed: bool = False
    """It passed a check once: it has started."""
    checks: int = 0
    """Checks made while starting (for the fast schedule)."""

    def record(self, ok: bool, message: str, now: datetime) -> Health:
        """The tally after one more check."""
        since = self.since if self.healthy is ok else now
        return replace(
            self,
            healthy=ok,
            failures=0 if ok else self.failures + 1,
            since=since,
            message="" if ok else message,
            checked_at=now,
            passed=self.passed or ok,
            checks=self.checks + 1,
        )

    def period(self, interval: float) -> float:
        """Seconds between this check and the next."""
        if self.passed:
            return interval
        return min(interval, STARTUP_FIRST_DELAY if self.checks <= 1 else STARTUP_PERIOD)

    def wait(self, now: datetime, interval: float) -> float:
        """Seconds until the next check is due (<= 0: due now)."""
        if self.checked_at is None:
            return 0.0
        return self.period(interval) - (now - self.checked_at).total_seconds()

    def due(self, now: datetime, interval: float) -> bool:
        return self.wait(now, interval) <= 0

    def failing(self, threshold: int) -> bool:
        """Started, then failed `threshold` checks in a row: to be replaced."""
        return self.passed and self.failures >= threshold
