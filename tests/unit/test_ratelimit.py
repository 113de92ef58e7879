"""Client-side pacing of E2B calls: buckets, the sandbox cap and fair turns (fake clock)."""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Callable

import pytest

from e2b_operator.handlers.settings import SettingsError, rates_from_env
from e2b_operator.sandboxes.errors import BackendError
from e2b_operator.sandboxes.pacer import Abandoned, Pacer
from e2b_operator.sandboxes.ratelimit import MIN_RATE, PRESETS, Bucket, Capacity, Endpoint
from e2b_operator.sandboxes.turns import Turns


def calls_in(bucket: Bucket, seconds: float, step: float = 0.01) -> list[float]:
    """When calls went through, trying every ``step`` for ``seconds`` from 0."""
    times, now = [], 0.0
    while now < seconds:
        if bucket.take(now) == 0:
            times.append(now)
        now = round(now + step, 6)
    return times


def test_a_bucket_paces_strictly_at_its_rate() -> None:
    times = calls_in(Bucket(5.0), 2.0)
    assert len(times) == 10  # 5/s over 2 s
    assert all(b - a >= 0.2 - 1e-9 for a, b in itertools.pairwise(times))
    # never more than the limit in any one-second window
    assert max(sum(1 for t in times if s <= t < s + 1) for s in times) == 5


def test_a_429_halves_the_rate_honours_retry_after_and_doubles_back() -> None:
    bucket = Bucket(5.0)
    assert bucket.take(0.0) == 0
    bucket.throttled(0.1, retry_after=2.0)
    assert bucket.rate == 2.5 and bucket.slowed
    assert bucket.wait(0.1) == pytest.approx(2.0)  # Retry-After
    bucket.throttled(0.2, retry_after=None)  # the same burst of 429s: one slowdown
    assert bucket.rate == 2.5
    assert bucket.take(2.1) == 0
    bucket.succeeded(0.2)
    assert bucket.rate == 2.5  # no time has passed without a 429
    bucket.succeeded(0.7)
    assert bucket.rate == pytest.approx(2.5 * 2**0.5)  # half a doubling
    bucket.succeeded(1.2)
    assert bucket.rate == 5.0 and not bucket.slowed  # never above the limit


def test_from_the_floor_back_to_the_limit_in_seconds() -> None:
    bucket = Bucket(5.0)
    for i in range(20):
        bucket.throttled(float(i * 2), retry_after=None)
    assert bucket.rate == MIN_RATE
    now, calls = 40.0, 0
    while bucket.slowed:  # one call at each turn the bucket gives
        now += bucket.wait(now)
        assert bucket.take(now) == 0
        bucket.succeeded(now)
        calls += 1
    assert now - 40.0 < 10 and calls < 15


def test_repeated_429s_slow_down_to_a_floor() -> None:
    bucket = Bucket(5.0)
    for i in range(20):
        bucket.throttled(float(i * 2), retry_after=None)
    assert bucket.rate == MIN_RATE


def test_an_unlimited_bucket_slows_down_from_what_it_observed() -> None:
    bucket = Bucket(math.inf)
    for i in range(40):
        assert bucket.take(i * 0.01) == 0  # 40 calls in 0.4 s: no pacing
    bucket.throttled(0.5, retry_after=None)
    assert bucket.rate == 20.0  # half the 40/s it saw
    now = 0.5
    while bucket.slowed:
        now += 0.1
        bucket.succeeded(now)
    assert bucket.rate == math.inf and now < 7  # unlimited again after seconds of successes


def test_the_sandbox_cap_holds_then_probes_one_at_a_time() -> None:
    cap = Capacity()
    assert cap.wait(0.0, in_flight=5) == 0
    cap.full(1.0, "maximum number of concurrent E2B sandboxes (20)")
    assert cap.wait(1.0, in_flight=0) == pytest.approx(0.5)
    assert cap.wait(1.6, in_flight=0) == 0  # a probe may go ...
    assert cap.wait(1.6, in_flight=1) == math.inf  # ... one at a time
    cap.full(1.7, "again")
    assert cap.wait(1.7, in_flight=0) == pytest.approx(1.0)  # the hold doubles
    assert cap.since == 1.0
    cap.freed()  # a kill made room
    assert cap.wait(1.8, in_flight=0) == 0
    cap.created()
    assert cap.wait(1.9, in_flight=7) == 0 and cap.since is None


def test_turns_go_round_robin_so_a_small_deployment_is_not_starved() -> None:
    turns: Turns[int] = Turns()
    for i in range(1000):
        turns.push("big", i)
    for i in range(4):
        turns.push("small", i)
    served = [turns.pop() for _ in range(8)]
    assert [k for k, _ in served] == ["big", "small"] * 4
    assert turns.count("small") == 0 and turns.count("big") == 996
    turns.push("late", 0)
    turns.discard("big", 10)
    assert turns.count("big") == 995
    assert [turns.pop()[0] for _ in range(2)] == ["big", "late"]  # type: ignore[index]


def test_rate_settings_presets_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    assert rates_from_env() == PRESETS["pro"]  # the default
    monkeypatch.setenv("E2B_OPERATOR_RATE_PRESET", "hobby")
    monkeypatch.setenv("E2B_OPERATOR_RATE_LIST_PER_S", "inf")
    rates = rates_from_env()
    assert rates[Endpoint.CREATE] == 1.0 and rates[Endpoint.LIST] == math.inf
    monkeypatch.setenv("E2B_OPERATOR_RATE_CREATE_PER_S", "0")
    with pytest.raises(SettingsError, match="E2B_OPERATOR_RATE_CREATE_PER_S"):
        rates_from_env()
    monkeypatch.setenv("E2B_OPERATOR_RATE_PRESET", "gold")
    with pytest.raises(SettingsError, match="pro, hobby, unlimited"):
        rates_from_env()


# -- the pacer (asyncio, real timers kept short) ---------------------------------------------


async def test_creates_are_granted_in_turn_across_deployments() -> None:
    pacer = Pacer(creates_in_flight=1)
    order: list[str] = []

    async def create(key: str) -> None:
        async with pacer.turn(key):
            order.append(key)
            await asyncio.sleep(0)

    await asyncio.gather(*[create("big") for _ in range(20)], *[create("small") for _ in range(4)])
    assert order[:9].count("small") == 4  # its four came among the first nine


async def test_waiting_on_the_rate_is_reported_and_cleared() -> None:
    pacer = Pacer({Endpoint.CREATE: 20.0})
    seen = []
    poked: list[str] = []
    pacer.on_throttled(poked.append)

    async def create() -> None:
        async with pacer.turn("web"):
            seen.append(pacer.throttle("web"))

    await asyncio.gather(*[create() for _ in range(4)])
    assert poked == ["web"]  # its loop is told once, when the wait begins
    reasons = {t.reason for t in seen if t is not None}
    assert reasons == {"RateLimited"}
    assert "20 creates/s" in next(t for t in seen if t is not None).message
    assert pacer.throttle("web") is None  # nothing waits any more


async def test_the_cap_holds_every_deployment_until_a_kill_frees_room() -> None:
    pacer = Pacer()
    with pytest.raises(BackendError):
        async with pacer.turn("a"):
            raise BackendError("CapacityExhausted", "maximum number of concurrent sandboxes")
    pacer.capacity.hold_until = math.inf  # as long as nothing frees room
    waiting = asyncio.create_task(_granted(pacer, "b"))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    throttle = pacer.throttle("b")
    assert throttle is not None and throttle.reason == "CapacityExhausted"
    assert "concurrent sandboxes" in throttle.message
    async with pacer.call(Endpoint.KILL):
        pass
    await asyncio.wait_for(waiting, 5)
    assert pacer.throttled_calls == 1


async def test_a_create_that_finds_room_ends_the_cap_status_while_more_wait() -> None:
    # A success proves E2B had room: the cap no longer binds (the gate opens), so the rest
    # go ahead and the deployment stops reporting it; a later 429 is reported anew.
    pacer = Pacer(creates_in_flight=1)
    pacer.capacity.full(pacer.clock(), "maximum number of concurrent sandboxes")
    seen: list[str | None] = []
    probe_ends = asyncio.Event()

    async def create() -> None:
        async with pacer.turn("web"):
            seen.append(t.reason if (t := pacer.throttle("web")) else None)
            if len(seen) == 1:
                await probe_ends.wait()

    creates = [asyncio.create_task(create()) for _ in range(3)]
    await asyncio.wait_for(_until(lambda: seen), 5)  # the probe went, after the hold
    assert pacer.throttle("web") is not None and len(pacer._turns) == 2  # the rest wait on it
    probe_ends.set()
    await asyncio.gather(*creates)
    assert seen == ["CapacityExhausted", None, None]
    assert pacer.throttle("web") is None


async def _until(check: Callable[[], object]) -> None:
    while not check():
        await asyncio.sleep(0.01)


async def test_an_abandoned_create_leaves_its_turn_and_sends_nothing() -> None:
    pacer = Pacer()
    pacer.capacity.full(pacer.clock(), "full")
    pacer.capacity.hold_until = math.inf
    abandon = asyncio.Event()
    task = asyncio.create_task(_granted(pacer, "a", abandon))
    await asyncio.sleep(0.01)
    abandon.set()
    with pytest.raises(Abandoned):
        await task
    assert pacer.throttle("a") is None and len(pacer._turns) == 0


async def test_a_success_after_an_outage_calls_back_once() -> None:
    pacer = Pacer()
    woken: list[int] = []
    pacer.on_recovered(lambda: woken.append(1))
    async with pacer.call(Endpoint.LIST):
        pass
    assert woken == []  # no outage before
    for _ in range(3):
        with pytest.raises(BackendError):
            async with pacer.call(Endpoint.LIST):
                raise BackendError("BackendUnavailable", "503")
    async with pacer.call(Endpoint.KILL):
        pass
    async with pacer.call(Endpoint.LIST):
        pass
    assert woken == [1]


async def _granted(pacer: Pacer, key: str, abandon: asyncio.Event | None = None) -> None:
    async with pacer.turn(key, abandon):
        pass


def _raised(exc: Exception, status: int, headers: dict[str, str]) -> Exception:
    """``exc`` raised as the SDK raises it: from a frame holding the response."""
    res = type("Res", (), {"status_code": status, "headers": headers})()
    try:
        assert res is not None
        raise exc
    except Exception as raised:
        return raised


def test_429s_are_told_apart_and_carry_retry_after() -> None:
    from e2b import RateLimitException

    from e2b_operator.sandboxes.errors import translate

    rate = translate(
        _raised(RateLimitException("429: Rate limit exceeded"), 429, {"Retry-After": "3"})
    )
    assert rate.reason == "RateLimited" and rate.retry_after == 3.0
    cap = translate(
        _raised(
            RateLimitException(
                "429: You have reached the maximum number of concurrent E2B sandboxes (20)"
            ),
            429,
            {},
        )
    )
    assert cap.reason == "CapacityExhausted" and cap.retry_after is None
    assert "concurrent E2B sandboxes (20)" in cap.message


def test_a_negative_retry_after_is_no_wait() -> None:
    from e2b import RateLimitException

    from e2b_operator.sandboxes.errors import translate

    rate = translate(_raised(RateLimitException("429: slow down"), 429, {"Retry-After": "-5"}))
    assert rate.reason == "RateLimited" and rate.retry_after == 0.0


@pytest.mark.parametrize("status", [500, 502, 503])
def test_an_sdk_error_with_a_5xx_status_is_e2b_unavailable(status: int) -> None:
    from e2b import SandboxException

    from e2b_operator.sandboxes.errors import translate

    err = translate(SandboxException(f"{status}: upstream failed", status_code=status))
    assert err.reason == "BackendUnavailable" and err.transient
    assert "upstream failed" in err.message
    other = translate(SandboxException("409: conflict", status_code=409))
    assert other.reason == "BackendError"


def test_turns_count_their_waiters() -> None:
    turns: Turns[int] = Turns()
    for key, item in (("a", 1), ("a", 2), ("b", 3)):
        turns.push(key, item)
    assert len(turns) == 3
    turns.discard("a", 2)
    turns.discard("a", 99)  # not waiting: nothing changes
    assert len(turns) == 2
    assert turns.pop() == ("a", 1) and len(turns) == 1
    assert turns.pop() == ("b", 3) and len(turns) == 0 and turns.pop() is None


async def test_a_long_paced_run_reports_since_its_first_wait() -> None:
    pacer = Pacer({Endpoint.CREATE: 50.0})
    waited: list[float] = []

    async def create() -> None:
        async with pacer.turn("web"):
            t = pacer.throttle("web")
            waited.append(t.waited_seconds if t else 0.0)

    await asyncio.gather(*[create() for _ in range(10)])
    # successes do not restart the wait: it grows while creates keep waiting for the rate
    assert max(waited) >= 0.1
