"""Hedged calls: an idempotent E2B call that is slow to answer is sent a second time, and
the first answer wins (Dean and Barroso, "The Tail at Scale").

One request that E2B took and never answered (a lost answer, a stuck front end) would
otherwise hold its caller for the whole request timeout, even after E2B is fine again: the
shared listing, and with it every deployment, or a deployment's pass behind one health
check's connect. The second request goes when the first has taken `Latency.hedge_after`:
a few times the typical answer of that call, at least HEDGE_MIN_SECONDS, so a working E2B
sees almost no second requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from .. import metrics

T = TypeVar("T")

HEDGE_MIN_SECONDS = 1.0
HEDGE_FACTOR = 4.0
"""A call is hedged after this many times its typical answer time ..."""
SMOOTHING = 0.2
"""... an exponentially weighted mean of the answers, this weight for the newest."""


@dataclass
class Latency:
    """Typical answer time of one kind of call."""

    operation: str
    typical: float = 0.0
    hedges: int = 0
    """Second requests sent."""

    def hedge_after(self) -> float:
        return max(HEDGE_MIN_SECONDS, HEDGE_FACTOR * self.typical)

    def answered(self, seconds: float) -> None:
        if self.typical == 0.0:
            self.typical = seconds
        else:
            self.typical += SMOOTHING * (seconds - self.typical)


async def hedged(call: Callable[[], Awaitable[T]], latency: Latency) -> T:
    """``call()``'s answer; if none comes within ``latency.hedge_after()``, ``call()`` is
    made again and the first success wins (the other is cancelled). Fails only when both
    fail, with the first call's error."""
    loop = asyncio.get_running_loop()
    started: dict[asyncio.Future[T], float] = {}

    def send() -> asyncio.Future[T]:
        task = asyncio.ensure_future(call())
        started[task] = loop.time()
        return task

    first = send()
    try:
        done, _ = await asyncio.wait([first], timeout=latency.hedge_after())
        if not done:
            latency.hedges += 1
            metrics.e2b_hedged(latency.operation)
            send()
        pending = set(started)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.exception() is None:
                    latency.answered(loop.time() - started[task])
                    return task.result()
        return first.result()  # both failed: raises the first one's error
    finally:
        for task in started:
            if not task.done():
                task.cancel()  # its error, if it ends with one first, is nobody's news
                task.add_done_callback(_retrieve)


def _retrieve(task: asyncio.Future[T]) -> None:
    if not task.cancelled():
        task.exception()
