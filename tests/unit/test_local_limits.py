"""e2b-local's per-key rate limits (pure logic, on a fake clock)."""

from __future__ import annotations

import pytest

from e2b_local.limits import PRESETS, Limiter, Limits, parse_body, parse_spec


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _creates(lim: Limiter, key: str, n: int) -> list[bool]:
    """n creates on the route the SDK uses (the legacy POST /sandboxes is checked apart)."""
    return [lim.admit(key, "POST", "/v2/sandboxes") is None for _ in range(n)]


def test_hobby_admits_one_create_a_second_per_key() -> None:
    clock = Clock()
    lim = Limiter(PRESETS["hobby"], clock)
    assert _creates(lim, "key-a", 1) == [True]
    refusal = lim.admit("key-a", "POST", "/sandboxes")
    assert refusal is not None
    assert refusal.message == "Rate limit exceeded"
    assert refusal.headers["Retry-After"] == "1"
    assert refusal.headers["RateLimit-Limit"] == "1"
    assert refusal.headers["RateLimit-Remaining"] == "0"
    assert lim.admit("key-a", "POST", "/v2/sandboxes") is not None  # one budget, both routes
    # another key has its own budget; other calls are not creates
    assert _creates(lim, "key-b", 2) == [True, False]
    assert lim.admit("key-a", "GET", "/v2/sandboxes") is None
    assert lim.admit("key-a", "POST", "/sandboxes/i1/timeout") is None
    clock.t += 0.5
    assert _creates(lim, "key-a", 1) == [False]
    clock.t += 0.5
    assert _creates(lim, "key-a", 2) == [True, False]


def test_pro_admits_a_burst_of_five_then_five_a_second() -> None:
    clock = Clock()
    lim = Limiter(PRESETS["pro"], clock)
    assert _creates(lim, "k", 6) == [True] * 5 + [False]
    refusal = lim.admit("k", "POST", "/v2/sandboxes")
    assert refusal is not None and refusal.headers["Retry-After"] == "1"  # 0.2 s, rounded up
    clock.t += 0.2
    assert _creates(lim, "k", 2) == [True, False]
    clock.t += 10
    assert _creates(lim, "k", 6) == [True] * 5 + [False]


def test_api_rate_counts_every_call_and_says_when_to_retry() -> None:
    clock = Clock()
    lim = Limiter(Limits(api_requests=3, api_period_seconds=30), clock)
    assert [lim.admit("k", "GET", "/v2/sandboxes") is None for _ in range(3)] == [True] * 3
    refusal = lim.admit("k", "DELETE", "/sandboxes/i1")
    assert refusal is not None and refusal.headers["Retry-After"] == "10"
    assert refusal.headers["RateLimit-Reset"] == "30"
    assert lim.admit("other", "GET", "/v2/sandboxes") is None
    clock.t += 10
    assert lim.admit("k", "GET", "/v2/sandboxes") is None


def test_concurrency_cap_answers_as_e2b() -> None:
    lim = Limiter(PRESETS["hobby"])
    assert lim.over_cap(19) is None
    refusal = lim.over_cap(20)
    assert refusal is not None and "Retry-After" not in refusal.headers
    assert refusal.message.startswith(
        "you have reached the maximum number of concurrent E2B sandboxes (20)."
    )
    assert Limiter().over_cap(10_000) is None


def test_setting_limits_starts_fresh_buckets() -> None:
    clock = Clock()
    lim = Limiter(PRESETS["hobby"], clock)
    assert _creates(lim, "k", 2) == [True, False]
    lim.set(Limits())
    assert _creates(lim, "k", 50) == [True] * 50
    lim.set(PRESETS["hobby"])
    assert _creates(lim, "k", 2) == [True, False]


def test_spec_presets_and_overrides() -> None:
    assert parse_spec("") == Limits() == parse_spec("off")
    assert parse_spec("hobby") == Limits(
        creates_per_second=1, concurrent_sandboxes=20, api_requests=20_000
    )
    pro = parse_spec("pro, concurrent_sandboxes=30,creates_per_second=2.5,api_requests=none")
    assert pro == Limits(creates_per_second=2.5, concurrent_sandboxes=30)
    assert parse_spec("concurrent_sandboxes=3") == Limits(concurrent_sandboxes=3)


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("gold", "unknown limits preset 'gold'"),
        ("pro,colour=3", "unknown limit 'colour'"),
        ("creates_per_second=fast", "'fast' is not a number"),
        ("creates_per_second=0", "creates_per_second must be > 0"),
        ("concurrent_sandboxes=-1", "concurrent_sandboxes must be >= 0"),
        ("concurrent_sandboxes=1.5", "concurrent_sandboxes must be an integer"),
        ("api_period_seconds=none", "api_period_seconds must be a number"),
    ],
)
def test_spec_errors_name_the_field(spec: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_spec(spec)


def test_body_preset_and_fields() -> None:
    assert parse_body(b'{"preset": "pro"}') == PRESETS["pro"]
    assert parse_body(b'{"preset": "pro", "concurrent_sandboxes": null}') == Limits(
        creates_per_second=5, api_requests=20_000
    )
    assert parse_body(b'{"creates_per_second": 2}') == Limits(creates_per_second=2)
    assert parse_body(b"{}") == Limits()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'[{"preset": "pro"}]', "JSON object"),
        (b"nope", "not JSON"),
        (b'{"preset": "gold"}', "unknown preset 'gold'"),
        (b'{"preset": ["pro"]}', "unknown preset"),
        (b'{"concurrent": 5}', "unknown limit 'concurrent'"),
        (b'{"concurrent_sandboxes": "5"}', "concurrent_sandboxes must be an integer"),
        (b'{"creates_per_second": true}', "creates_per_second must be a number"),
        (b'{"api_requests": 0}', "api_requests must be > 0"),
    ],
)
def test_body_errors_name_the_field(body: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_body(body)
