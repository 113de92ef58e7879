"""sandboxes.hedge: a slow idempotent call is sent again and the first answer wins;
sandboxes.errors.deadline: a call that does not answer in time is a BackendTimeout."""

from __future__ import annotations

import asyncio

import pytest

from e2b_operator.sandboxes import hedge
from e2b_operator.sandboxes.errors import BackendError, deadline
from e2b_operator.sandboxes.hedge import Latency, hedged


class Calls:
    """A call whose n-th invocation does what ``plan[n]`` says: a value, an exception, or
    None (hang until cancelled)."""

    def __init__(self, *plan: object) -> None:
        self.plan = list(plan)
        self.made = 0
        self.cancelled = 0

    async def __call__(self) -> object:
        step = self.plan[self.made]
        self.made += 1
        if step is None:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        if isinstance(step, BaseException):
            raise step
        return step


@pytest.fixture(autouse=True)
def quick_hedges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hedge, "HEDGE_MIN_SECONDS", 0.05)


async def test_an_answer_in_time_is_not_hedged() -> None:
    calls, latency = Calls("one"), Latency("list")
    assert await hedged(calls, latency) == "one"
    assert (calls.made, latency.hedges) == (1, 0)
    assert latency.typical > 0


async def test_a_hanging_call_is_answered_by_its_hedge_and_then_cancelled() -> None:
    calls, latency = Calls(None, "two"), Latency("list")
    assert await asyncio.wait_for(hedged(calls, latency), 60) == "two"
    await asyncio.sleep(0)
    assert (calls.made, calls.cancelled, latency.hedges) == (2, 1, 1)


async def test_a_quick_failure_is_not_hedged() -> None:
    calls = Calls(KeyError("gone"), "unused")
    with pytest.raises(KeyError):
        await hedged(calls, Latency("kill"))
    assert calls.made == 1


async def test_the_second_answer_wins_when_the_first_fails_after_the_hedge() -> None:
    async def slow_failure() -> str:
        await asyncio.sleep(0.2)
        raise KeyError("late")

    made = []

    async def call() -> str:
        made.append(1)
        if len(made) == 1:
            return await slow_failure()
        await asyncio.sleep(0.4)
        return "second"

    assert await asyncio.wait_for(hedged(call, Latency("connect")), 60) == "second"


async def test_both_failing_raise_the_first_error() -> None:
    async def call() -> str:
        await asyncio.sleep(0.1)
        raise ValueError(f"failure {len(made)}")

    made: list[int] = []

    async def counted() -> str:
        made.append(1)
        return await call()

    with pytest.raises(ValueError):
        await asyncio.wait_for(hedged(counted, Latency("kill")), 60)
    assert len(made) == 2


def test_the_hedge_waits_a_few_typical_answers() -> None:
    latency = Latency("list")
    for _ in range(50):
        latency.answered(1.0)
    assert latency.hedge_after() == pytest.approx(hedge.HEDGE_FACTOR * 1.0, rel=0.01)
    latency.answered(0.0)
    assert latency.hedge_after() < hedge.HEDGE_FACTOR * 1.0  # it follows the answers


async def test_a_call_past_its_deadline_is_a_backend_timeout() -> None:
    with pytest.raises(BackendError) as raised:
        async with deadline(0.05):
            await asyncio.sleep(3600)
    assert raised.value.reason == "BackendTimeout" and raised.value.transient
    assert "0.05s" in raised.value.message
