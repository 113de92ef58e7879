"""Client-side limits for E2B calls, per endpoint class: pure logic over a clock reading.

E2B publishes its limits per team (docs, sandbox/rate-limits): Pro 5 sandbox creates/s and
100 concurrent sandboxes, Hobby 1 create/s and 20; the lifecycle API (list, connect,
timeout, pause, kill) 20,000 requests per 30 s. Beyond a limit it answers 429. A `Bucket`
paces one endpoint class at its configured rate, slows down on a 429 (halves, honours
Retry-After) and doubles back on success; `Capacity` holds creates while E2B says
the concurrent-sandbox cap is reached. Both take `now` (seconds, monotonic) as an argument,
so tests drive them with a fake clock.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum


class Endpoint(StrEnum):
    """E2B call classes, each paced by its own bucket."""

    CREATE = "create"
    LIST = "list"
    CONNECT = "connect"
    """connect, resume (a connect) and set_timeout"""
    KILL = "kill"
    PAUSE = "pause"


LIFECYCLE_PER_S = 20_000 / 30
"""E2B's lifecycle API limit (list, connect, timeout, pause, kill), per second."""

UNLIMITED = math.inf

PRESETS: dict[str, dict[Endpoint, float]] = {
    "pro": {e: 5.0 if e is Endpoint.CREATE else LIFECYCLE_PER_S for e in Endpoint},
    "hobby": {e: 1.0 if e is Endpoint.CREATE else LIFECYCLE_PER_S for e in Endpoint},
    "unlimited": dict.fromkeys(Endpoint, UNLIMITED),
}
"""Rates per second by plan (E2B's published limits); `unlimited` for a backend without."""

MIN_RATE = 0.2
"""Slowest pace after repeated 429s: one call per 5 s."""
SLOWDOWN = 0.5
"""A 429 halves the rate ..."""
SLOWDOWN_EVERY = 1.0
"""... at most once per this many seconds (a burst of 429s is one signal)."""
RECOVERY_DOUBLING = 1.0
"""After a slowdown the rate doubles per this many seconds of calls going through (no 429),
as TCP's slow start: back from the floor to 5/s in under 5 s, where a step per success took
about 30 s at that floor's few calls per second ..."""
UNLIMITED_AGAIN = 1000.0
"""... up to the configured rate; an unlimited bucket is unlimited again past this."""
WINDOW = 1.0
"""Seconds of grants that make the observed rate (the base of a slowdown when unlimited)."""


@dataclass
class Bucket:
    """A token bucket holding at most one token (strict pacing: one call per 1/rate s, as
    a per-second limit measured over any window allows), adaptive to 429 answers."""

    limit: float
    """The configured rate (calls/s); inf: no limit until E2B answers 429."""
    rate: float = field(init=False)
    """The current rate: the limit, or less after a 429."""
    blocked_until: float = 0.0
    """Nothing before this (Retry-After, or one interval after a 429)."""
    _next: float = 0.0
    _slowed_at: float = -math.inf
    _recovered_at: float = 0.0
    _grants: deque[float] = field(default_factory=deque)

    def __post_init__(self) -> None:
        if not self.limit > 0:
            raise ValueError("a rate limit must be positive (inf for none)")
        self.rate = self.limit

    @property
    def slowed(self) -> bool:
        return self.rate < self.limit

    def wait(self, now: float) -> float:
        """Seconds until a call may go (0: now)."""
        return max(self.blocked_until - now, self._next - now, 0.0)

    def take(self, now: float) -> float:
        """Take the next call's turn if it is due (returns 0), else the seconds to wait."""
        wait = self.wait(now)
        if wait > 0:
            return wait
        self._next = now + (1.0 / self.rate if math.isfinite(self.rate) else 0.0)
        self._grants.append(now)
        while self._grants and self._grants[0] <= now - WINDOW:
            self._grants.popleft()
        return 0.0

    def throttled(self, now: float, retry_after: float | None) -> None:
        """E2B answered 429: halve the rate (once per SLOWDOWN_EVERY; without a limit, half
        the rate observed over the last second) and wait Retry-After, or one interval of the
        new rate."""
        if now - self._slowed_at >= SLOWDOWN_EVERY:
            observed = sum(1 for t in self._grants if t > now - WINDOW) / WINDOW
            base = self.rate if math.isfinite(self.rate) else max(observed, MIN_RATE)
            self.rate = max(MIN_RATE, base * SLOWDOWN)
            self._slowed_at = now
        self._recovered_at = now
        pause = retry_after if retry_after is not None and retry_after > 0 else 1.0 / self.rate
        self.blocked_until = max(self.blocked_until, now + pause)
        self._next = max(self._next, self.blocked_until)

    def succeeded(self, now: float) -> None:
        """A call went through: after a slowdown, speed up again (RECOVERY_DOUBLING)."""
        if not self.slowed:
            return
        rate = self.rate * 2 ** (max(now - self._recovered_at, 0.0) / RECOVERY_DOUBLING)
        self._recovered_at = now
        if not math.isfinite(self.limit) and rate >= UNLIMITED_AGAIN:
            rate = self.limit
        self.rate = min(self.limit, rate)


CAPACITY_FIRST_HOLD = 0.5
CAPACITY_MAX_HOLD = 10.0


@dataclass
class Capacity:
    """E2B's concurrent-sandbox cap, as its 429 answers reveal it. While it binds, creates
    are held (0.5 s, doubling to 10 s), then one goes as a probe; a success opens the gate,
    and so does a kill or a pause (it frees room)."""

    hold_until: float = 0.0
    holds: int = 0
    """Cap answers in a row."""
    probing: bool = False
    """One create at a time until one succeeds."""
    since: float | None = None
    """When the cap started binding (None: it does not)."""
    message: str = ""
    """E2B's answer."""

    def full(self, now: float, message: str) -> None:
        self.holds += 1
        hold = min(CAPACITY_MAX_HOLD, CAPACITY_FIRST_HOLD * 2 ** (self.holds - 1))
        self.hold_until = now + hold
        self.probing = True
        self.since = now if self.since is None else self.since
        self.message = message

    def freed(self) -> None:
        """A sandbox went away: the next create may find room."""
        self.hold_until = 0.0

    def created(self) -> None:
        self.hold_until, self.holds, self.probing, self.since = 0.0, 0, False, None

    def wait(self, now: float, in_flight: int) -> float:
        """Seconds until a create may go (inf: when the probe in flight ends)."""
        if now < self.hold_until:
            return self.hold_until - now
        if self.probing and in_flight > 0:
            return math.inf
        return 0.0
