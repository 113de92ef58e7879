"""E2B's rate limits and concurrency caps per API key, through the real SDK (limits.py).

The bucket arithmetic (bursts, refill) is in tests/unit/test_local_limits.py on a fake clock;
here the wiring: what the SDK sees, two teams' separate limits, the admin endpoint, the flag.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2b import AsyncSandbox, RateLimitException, Sandbox

from .conftest import TEAM_B_KEY, LocalServer

EXE = os.path.join(os.path.dirname(sys.executable), "e2b-local")
OFF = {
    "creates_per_second": None,
    "create_burst": None,
    "concurrent_sandboxes": None,
    "api_requests": None,
    "api_period_seconds": 30.0,
}


def _admin(local: LocalServer, method: str, body: object = None) -> httpx.Response:
    h = {"X-API-Key": local.api_key}
    return httpx.request(method, f"{local.url}/admin/limits", json=body, headers=h)


@pytest.fixture
def limited(local: LocalServer) -> Iterator[LocalServer]:
    """The session server; its limits are off again afterwards."""
    try:
        yield local
    finally:
        _admin(local, "DELETE").raise_for_status()


def _running(kw: dict[str, object]) -> list[str]:
    return [s.sandbox_id for s in Sandbox.list(**kw).next_items()]


def test_hobby_refuses_a_second_create_within_the_second(limited: LocalServer) -> None:
    assert _admin(limited, "POST", {"preset": "hobby"}).json()["limits"]["creates_per_second"] == 1

    async def creates() -> list[AsyncSandbox | BaseException]:
        # Sent together: they arrive well within one second of each other.
        return await asyncio.gather(
            *(AsyncSandbox.create(retries=0, **limited.kw) for _ in range(3)),
            return_exceptions=True,
        )

    results = asyncio.run(creates())
    made = [r for r in results if isinstance(r, AsyncSandbox)]
    refused = [r for r in results if isinstance(r, RateLimitException)]
    try:
        assert len(made) + len(refused) == 3, results
        assert made and refused, results
        assert "Rate limit exceeded" in str(refused[0])
    finally:
        for s in made:
            Sandbox.kill(s.sandbox_id, **limited.kw)


def test_rate_refusal_is_e2bs_answer(limited: LocalServer) -> None:
    _admin(limited, "POST", {"preset": "hobby", "creates_per_second": 0.01}).raise_for_status()
    h = {"X-API-Key": limited.api_key}
    # A create that fails validation still spends the key's create budget (checked first).
    assert httpx.post(f"{limited.url}/sandboxes", json={}, headers=h).status_code == 400
    r = httpx.post(f"{limited.url}/sandboxes", json={"templateID": "base"}, headers=h)
    assert r.status_code == 429
    assert r.json() == {"code": 429, "message": "Rate limit exceeded"}
    assert 90 <= int(r.headers["Retry-After"]) <= 100
    assert r.headers["RateLimit-Limit"] == "1" and r.headers["RateLimit-Remaining"] == "0"
    calls = httpx.get(f"{limited.url}/admin/calls", headers=h).json()
    assert calls["refused POST /sandboxes"] == 1 and calls["POST /sandboxes"] == 2, calls
    # Only creates are limited at this rate; turning limits off admits creates at once.
    assert httpx.get(f"{limited.url}/v2/sandboxes", headers=h).status_code == 200
    _admin(limited, "DELETE").raise_for_status()
    Sandbox.create(retries=0, **limited.kw).kill()


def test_concurrency_cap_counts_running_not_paused(limited: LocalServer) -> None:
    cap = len(_running(limited.kw)) + 1
    _admin(limited, "POST", {"concurrent_sandboxes": cap}).raise_for_status()
    first = Sandbox.create(retries=0, **limited.kw)
    made = [first]
    try:
        with pytest.raises(RateLimitException) as e:
            Sandbox.create(retries=0, **limited.kw)
        assert f"you have reached the maximum number of concurrent E2B sandboxes ({cap})." in str(
            e.value
        )
        first.beta_pause()  # a paused sandbox does not count ...
        made.append(Sandbox.create(retries=0, **limited.kw))
        with pytest.raises(RateLimitException, match="concurrent E2B sandboxes"):
            Sandbox.connect(first.sandbox_id, retries=0, **limited.kw)  # ... until resumed
        made.pop().kill()
        assert Sandbox.connect(first.sandbox_id, retries=0, **limited.kw).is_running()
    finally:
        for s in made:
            s.kill()


def test_api_rate_limits_every_control_plane_call(limited: LocalServer) -> None:
    _admin(limited, "POST", {"api_requests": 2, "api_period_seconds": 600}).raise_for_status()
    h = {"X-API-Key": limited.api_key}
    codes = [httpx.get(f"{limited.url}/v2/sandboxes", headers=h).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    with pytest.raises(RateLimitException):
        Sandbox.list(retries=0, **limited.kw).next_items()
    assert _admin(limited, "GET").status_code == 200  # /admin/* is never limited


def test_each_team_has_its_own_limits(limited: LocalServer) -> None:
    a, b = limited.kw, {**limited.kw, "api_key": TEAM_B_KEY}
    cap = max(len(_running(a)), len(_running(b))) + 2  # room for two of B's
    body = {"preset": "hobby", "creates_per_second": 0.01, "concurrent_sandboxes": cap}
    _admin(limited, "POST", body).raise_for_status()
    made = []
    try:
        made.append(Sandbox.create(retries=0, **a))  # team A's one create for 100 s
        with pytest.raises(RateLimitException, match="Rate limit exceeded"):
            Sandbox.create(retries=0, **a)
        made.append(Sandbox.create(retries=0, **b))  # team B's budget is its own
        _admin(limited, "POST", {"concurrent_sandboxes": cap}).raise_for_status()
        while len(_running(a)) < cap:
            made.append(Sandbox.create(retries=0, **a))
        with pytest.raises(RateLimitException, match="concurrent E2B sandboxes"):
            Sandbox.create(retries=0, **a)
        made.append(Sandbox.create(retries=0, **b))  # A at its cap does not stop B
    finally:
        for s in made:
            s.kill()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'[{"preset": "pro"}]', "JSON object"),
        (b"not json", "not JSON"),
        (b'{"preset": "enterprise"}', "unknown preset 'enterprise'"),
        (b'{"concurrent": 5}', "unknown limit 'concurrent'"),
        (b'{"concurrent_sandboxes": "5"}', "concurrent_sandboxes must be an integer"),
        (b'{"creates_per_second": -1}', "creates_per_second must be > 0"),
    ],
)
def test_admin_limits_rejects_bad_bodies(limited: LocalServer, body: bytes, reason: str) -> None:
    h = {"X-API-Key": limited.api_key, "Content-Type": "application/json"}
    _admin(limited, "POST", {"preset": "pro"}).raise_for_status()
    r = httpx.post(f"{limited.url}/admin/limits", content=body, headers=h)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == 400 and reason in r.json()["message"]
    assert _admin(limited, "GET").json()["limits"]["concurrent_sandboxes"] == 100, "changed"


def test_admin_limits_switches_at_run_time_and_needs_the_key(limited: LocalServer) -> None:
    assert _admin(limited, "GET").json() == {"limits": OFF, "presets": ["off", "hobby", "pro"]}
    pro = _admin(limited, "POST", {"preset": "pro", "concurrent_sandboxes": 30}).json()
    assert pro["limits"] == {
        **OFF,
        "creates_per_second": 5,
        "concurrent_sandboxes": 30,
        "api_requests": 20000,
    }
    assert _admin(limited, "DELETE").json()["limits"] == OFF
    for method in ("GET", "POST", "DELETE"):
        r = httpx.request(method, f"{limited.url}/admin/limits", json={"preset": "hobby"})
        assert r.status_code == 401
    assert _admin(limited, "GET").json()["limits"] == OFF


def test_bad_limits_flag_is_refused_at_start(tmp_path: Path) -> None:
    bad = subprocess.run(
        [EXE, "serve", "--state-dir", str(tmp_path), "--limits", "pro,concurrent=3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "unknown limit 'concurrent'" in bad.stderr
