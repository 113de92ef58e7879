"""Health of one sandbox across checks: startup probing, consecutive failures, transitions.

Until its first check passes a sandbox is *starting*: it is checked on a fast schedule
(STARTUP_FIRST_DELAY seconds, then STARTUP_PERIOD), as a Kubernetes startupProbe does, and
its failures do not count toward the failure threshold; after that, every `interval`
seconds. A check runs a command in the sandbox (envd), not a call to E2B's control plane.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from ..api.layout import MAIN_EXIT
from .masking import shown
from .observed import CommandOutcome

STARTUP_FIRST_DELAY = 0.25
STARTUP_PERIOD = 0.5
DETAIL_LIMIT = 512
"""Characters of a failed check's output kept in status and the log."""


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
    main_exit: int | None = None
    """The main script's exit code, once a check saw it had exited."""

    def record(self, ok: bool, message: str, now: datetime, main_exit: int | None = None) -> Health:
        """The tally after one more check (``main_exit``: the main script's, if it exited)."""
        since = self.since if self.healthy is ok else now
        return replace(
            self,
            main_exit=self.main_exit if main_exit is None else main_exit,
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


MAIN_EXIT_MARKER = "E2B_MAIN_EXIT="


def probe_command(check: str | None) -> str:
    """What runs at each check: a first line with the main script's exit code if it has
    exited, then the template's healthCheck hook (none: it passes)."""
    report = f'if [ -e {MAIN_EXIT} ]; then echo "{MAIN_EXIT_MARKER}$(cat {MAIN_EXIT})"; fi'
    return f"{report}\n{check or 'true'}"


def read_probe(outcome: CommandOutcome) -> tuple[CommandOutcome, int | None]:
    """The hook's own outcome, and the main script's exit code (None: still running)."""
    first, _, rest = outcome.stdout.partition("\n")
    if not first.startswith(MAIN_EXIT_MARKER):
        return outcome, None
    code = first.removeprefix(MAIN_EXIT_MARKER).strip()
    return replace(outcome, stdout=rest), int(code) if code.lstrip("-").isdigit() else None


def failure_message(outcome: CommandOutcome, timeout: float, secrets: Iterable[str]) -> str:
    """Why a check failed, for status and the log: a timeout says so; otherwise the exit code
    and the end of its output, Secret values masked."""
    if outcome.timed_out:
        return f"health check timed out after {timeout:g}s"
    detail = shown(outcome.stderr or outcome.stdout or outcome.error, secrets, DETAIL_LIMIT)
    return f"health check exited {outcome.exit_code}: {detail}"
