"""Exponential backoff after consecutive failures."""

from __future__ import annotations

FIRST_SECONDS = 0.5
MAX_SECONDS = 60.0


def backoff(failures: int, cap: float = MAX_SECONDS) -> float:
    """Seconds to wait after ``failures`` failures in a row: 1 s, 2 s, 4 s, ... up to ``cap``."""
    return min(cap, FIRST_SECONDS * 2 ** min(failures, 10))
