"""Exponential backoff after consecutive failures."""

from __future__ import annotations

FIRST_SECONDS = 0.5
MAX_SECONDS = 60.0


def backoff(failures: int, cap: float = MAX_SECONDS) -> float:
    """Seconds to wait after ``failures`` failures in a row: 1 s, 2 s, 4 s, ... up to ``cap``."""
    return min(cap, FIRST_SECONDS * 2 ** min(failures, 10))


QUIET_FAILURES = 1
"""Transient E2B failures in a row retried before they show in status: one blip is no news."""


def reported(failures_before: int, transient: bool) -> bool:
    """Whether a failure goes into conditions now, or is first retried quietly."""
    return not transient or failures_before >= QUIET_FAILURES
