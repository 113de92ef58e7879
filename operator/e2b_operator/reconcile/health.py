"""Health of one sandbox across checks: consecutive failures and transition times."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime


@dataclass(frozen=True)
class Health:
    """The running tally of a sandbox's health checks."""

    healthy: bool | None = None
    failures: int = 0
    since: datetime | None = None
    message: str = ""
    checked_at: datetime | None = None

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
        )

    def due(self, now: datetime, interval: float) -> bool:
        return self.checked_at is None or (now - self.checked_at).total_seconds() >= interval
