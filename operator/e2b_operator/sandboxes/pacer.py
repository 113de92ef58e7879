"""Pacing of the E2B calls made with one API key (E2B counts its limits per team).

Every control-plane call waits for its endpoint class's `Bucket` (ratelimit.py). Creates also
wait for their turn: a fair queue keyed by deployment (`Turns`), at most `creates_in_flight`
at once, and E2B's concurrent-sandbox cap (`Capacity`). A 429 slows the bucket or holds the
cap; the caller retries the same create (its idempotency key makes that safe) and waits its
turn again. Deployments ask `throttle(key)` why their creates wait, for their status. After
an outage (5xx, timeouts, refused connections) the first call that succeeds, anywhere, calls
the `on_recovered` callbacks, so waiting loops look again at once instead of sleeping out
their backoff.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from ..reconcile.observed import Throttle
from .errors import BackendError
from .ratelimit import PRESETS, UNLIMITED, Bucket, Capacity, Endpoint
from .turns import Turns

OUTAGE = frozenset({"BackendUnavailable", "BackendUnreachable", "BackendTimeout"})
"""Failures that say E2B is down (a later success says it is back)."""
PACED = frozenset({"RateLimited", "CapacityExhausted"})
"""Failures the pacer answers by waiting: the same call is retried when its turn comes."""


class Abandoned(BackendError):
    """A create given up while it waited for its turn: nothing was sent to E2B."""

    def __init__(self) -> None:
        super().__init__("Abandoned", "the create was given up before it was sent")


class Pacer:
    """Rate, fairness and cap for one E2B API key's calls."""

    def __init__(
        self,
        limits: Mapping[Endpoint, float] | None = None,
        *,
        creates_in_flight: int = 32,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        limits = limits if limits is not None else PRESETS["unlimited"]
        self.limits = dict(limits)
        self.buckets = {e: Bucket(limits.get(e, UNLIMITED)) for e in Endpoint}
        self.capacity = Capacity()
        self.creates_in_flight = creates_in_flight
        self.clock = clock
        self.throttled_calls = 0
        """429 answers seen (rate or cap)."""
        self._turns: Turns[asyncio.Future[None]] = Turns()
        self._in_flight = 0
        self._active: Counter[str] = Counter()
        """Per key: creates waiting or in flight."""
        self._held: dict[str, tuple[str, float]] = {}
        """Per key: why its creates wait (RateLimited, CapacityExhausted) and since when: from
        the first wait until none waits for the rate, or a create finds room under the cap."""
        self._timer: asyncio.TimerHandle | None = None
        self._outage = False
        self._recovered: list[Callable[[], None]] = []
        self._throttled: list[Callable[[str], None]] = []

    @property
    def waiting(self) -> int:
        """Creates waiting for their turn (rate, cap or room in flight)."""
        return len(self._turns)

    @property
    def in_flight(self) -> int:
        """Creates granted and not yet answered."""
        return self._in_flight

    def on_recovered(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when a call succeeds after an outage."""
        self._recovered.append(callback)

    def on_throttled(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(key)`` when a key's creates start waiting on a limit (so its loop
        can come back to report it, even if none of its creates finishes meanwhile)."""
        self._throttled.append(callback)

    @asynccontextmanager
    async def call(self, endpoint: Endpoint) -> AsyncIterator[None]:
        """One call of ``endpoint``: waits for its bucket, records the outcome."""
        bucket = self.buckets[endpoint]
        while (wait := bucket.take(self.clock())) > 0:
            await asyncio.sleep(wait)
        try:
            yield
        except BackendError as exc:
            self._failed(endpoint, exc)
            raise
        self._succeeded(endpoint)

    @asynccontextmanager
    async def turn(self, key: str, abandon: asyncio.Event | None = None) -> AsyncIterator[None]:
        """One create for ``key`` (a deployment): waits for its turn among the keys with
        creates waiting, room in flight, the create rate and E2B's cap. Raises Abandoned if
        ``abandon`` is set first."""
        self._active[key] += 1
        try:
            await self._granted(key, abandon)
            try:
                yield
            except BackendError as exc:
                self._failed(Endpoint.CREATE, exc)
                raise
            else:
                if self._held.get(key, ("",))[0] == "CapacityExhausted":
                    self._held.pop(key)  # there was room after all
                self._succeeded(Endpoint.CREATE)
            finally:
                self._in_flight -= 1
                self._dispatch()
        finally:
            self._active[key] -= 1
            if self._active[key] <= 0:
                del self._active[key]
                self._held.pop(key, None)

    def throttle(self, key: str) -> Throttle | None:
        """Why ``key``'s creates wait on E2B's limits, if they do."""
        held = self._held.get(key)
        if held is None:
            return None
        reason, since = held
        waited = max(self.clock() - since, 0.0)
        if reason == "CapacityExhausted":
            return Throttle(
                "CapacityExhausted",
                f"E2B has no room for more sandboxes ({self.capacity.message}); creates wait "
                "and are shared in turn with other deployments",
                waited,
            )
        bucket = self.buckets[Endpoint.CREATE]
        slowed = ", slowed down after E2B answered 429" if bucket.slowed else ""
        return Throttle(
            "RateLimited",
            f"creates are paced to E2B's rate limit ({_rate(bucket.limit)}{slowed}), "
            "shared in turn with other deployments",
            waited,
        )

    async def _granted(self, key: str, abandon: asyncio.Event | None) -> None:
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._turns.push(key, granted)
        self._dispatch()
        gave_up = asyncio.ensure_future(abandon.wait()) if abandon is not None else None
        waits: list[asyncio.Future[Any]] = [granted, *([gave_up] if gave_up else [])]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            self._leave(key, granted)
            raise
        finally:
            if gave_up is not None:
                gave_up.cancel()
        if not granted.done():
            self._leave(key, granted)
            raise Abandoned()

    def _leave(self, key: str, granted: asyncio.Future[None]) -> None:
        """A waiter goes away: give back its room if it had been granted."""
        if granted.done() and not granted.cancelled():
            self._in_flight -= 1
        else:
            granted.cancel()
            self._turns.discard(key, granted)
        self._dispatch()

    def _dispatch(self) -> None:
        """Grant creates in turn while room, the rate and the cap allow."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        bucket = self.buckets[Endpoint.CREATE]
        while len(self._turns) and self._in_flight < self.creates_in_flight:
            now = self.clock()
            reason, wait = "CapacityExhausted", self.capacity.wait(now, self._in_flight)
            if wait <= 0:
                reason, wait = "RateLimited", bucket.wait(now)
            if wait > 0:
                for key in self._turns:
                    if self._held.get(key, ("",))[0] != reason:
                        self._held[key] = (reason, now)
                        for callback in self._throttled:
                            callback(key)
                if math.isfinite(wait):
                    self._timer = asyncio.get_running_loop().call_later(wait, self._dispatch)
                return
            popped = self._turns.pop()
            assert popped is not None
            key, granted = popped
            if granted.done():  # its waiter left
                continue
            bucket.take(now)
            self._in_flight += 1
            granted.set_result(None)
            if not self._turns.count(key) and self._held.get(key, ("",))[0] == "RateLimited":
                self._held.pop(key)  # none of its creates waits for the rate any more

    def _failed(self, endpoint: Endpoint, exc: BackendError) -> None:
        now = self.clock()
        if exc.reason == "CapacityExhausted" and endpoint is Endpoint.CREATE:
            self.throttled_calls += 1
            self.capacity.full(now, exc.message)
        elif exc.reason in PACED:
            self.throttled_calls += 1
            self.buckets[endpoint].throttled(now, exc.retry_after)
        elif exc.reason in OUTAGE:
            self._outage = True

    def _succeeded(self, endpoint: Endpoint) -> None:
        self.buckets[endpoint].succeeded(self.clock())
        if endpoint is Endpoint.CREATE:
            self.capacity.created()
        elif endpoint in (Endpoint.KILL, Endpoint.PAUSE) and self.capacity.since is not None:
            self.capacity.freed()
            self._dispatch()
        if self._outage:
            self._outage = False
            for callback in self._recovered:
                callback()


def _rate(limit: float) -> str:
    return f"{limit:g} creates/s" if math.isfinite(limit) else "no fixed rate"
