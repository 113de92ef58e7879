"""E2B's published rate limits and concurrency caps, per team (teams.py), as E2B counts them.

E2B (e2b.dev/docs/sandbox/rate-limits): Hobby 1 sandbox create/s and 20 concurrent sandboxes,
Pro 5 creates/s and 100 concurrent; the lifecycle API 20,000 requests per 30 s. Its API answers
a refused rate with 429 `{"code": 429, "message": "Rate limit exceeded"}`, `Retry-After`
(whole seconds, at least 1) and `RateLimit-Limit/-Remaining/-Reset` (infra
`middleware/ratelimit`: a token bucket per team and route); the concurrency cap with 429 and
"you have reached the maximum number of concurrent E2B sandboxes (N). ..." without
`Retry-After`.

Spec string (CLI `--limits`, env E2B_LOCAL_LIMITS): comma-separated presets (`off`, `hobby`,
`pro`) and FIELD=VALUE overrides, e.g. `pro,concurrent_sandboxes=30`; `none` unsets a field.
At run time: GET/POST/DELETE /admin/limits; POST takes a JSON object with an optional
"preset" and fields (null = unlimited), and replaces the limits; DELETE turns them off.
Default: off.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .admin import bad_request, json_object


@dataclass(frozen=True)
class Limits:
    """What every API key may do; None is unlimited."""

    creates_per_second: float | None = None
    create_burst: int | None = None  # creates at once after a pause; default ceil(rate)
    concurrent_sandboxes: int | None = None
    api_requests: int | None = None  # control-plane calls per api_period_seconds
    api_period_seconds: float = 30.0

    def __post_init__(self) -> None:
        _check("creates_per_second", self.creates_per_second, whole=False, positive=True)
        _check("create_burst", self.create_burst, whole=True, positive=True)
        _check("concurrent_sandboxes", self.concurrent_sandboxes, whole=True, positive=False)
        _check("api_requests", self.api_requests, whole=True, positive=True)
        if self.api_period_seconds is None:
            raise ValueError("api_period_seconds must be a number")
        _check("api_period_seconds", self.api_period_seconds, whole=False, positive=True)


def _check(name: str, v: object, *, whole: bool, positive: bool) -> None:
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, int if whole else int | float):
        raise ValueError(f"{name} must be {'an integer' if whole else 'a number'} or null")
    if v < 0 or (positive and v == 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}")


PRESETS: dict[str, Limits] = {
    "off": Limits(),
    "hobby": Limits(creates_per_second=1, concurrent_sandboxes=20, api_requests=20_000),
    "pro": Limits(creates_per_second=5, concurrent_sandboxes=100, api_requests=20_000),
}
FIELDS = tuple(f.name for f in fields(Limits))
RATE_LIMITED = "Rate limit exceeded"


def _field(limits: Limits, name: str, value: object) -> Limits:
    if name not in FIELDS:
        raise ValueError(f"unknown limit {name!r} (one of {', '.join(FIELDS)})")
    return replace(limits, **{name: value})


def parse_spec(spec: str) -> Limits:
    limits = Limits()
    for item in filter(None, (p.strip() for p in spec.split(","))):
        name, eq, raw = item.partition("=")
        if not eq:
            if name not in PRESETS:
                raise ValueError(f"unknown limits preset {name!r} (one of {', '.join(PRESETS)})")
            limits = PRESETS[name]
            continue
        try:
            value: float | None = None if raw == "none" else float(raw)
        except ValueError:
            raise ValueError(f"bad limit {item!r}: {raw!r} is not a number") from None
        if value is not None and value.is_integer() and name != "creates_per_second":
            value = int(value)
        limits = _field(limits, name, value)
    return limits


def parse_body(raw: bytes) -> Limits:
    """The limits a POST /admin/limits body asks for; ValueError says what is wrong."""
    body = json_object(raw, '{"preset": "pro", "concurrent_sandboxes": 30}')
    preset = body.pop("preset", "off")
    if not isinstance(preset, str) or preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r} (one of {', '.join(PRESETS)})")
    limits = PRESETS[preset]
    for name, value in body.items():
        limits = _field(limits, name, value)
    return limits


@dataclass(frozen=True)
class Refusal:
    """A 429 to answer: E2B's message and headers."""

    message: str
    headers: dict[str, str]

    def response(self) -> Response:
        body = {"code": 429, "message": self.message}
        return JSONResponse(body, status_code=429, headers=self.headers)


@dataclass
class _Bucket:
    tokens: float
    at: float


class Limiter:
    """Token buckets per team; `admit` for every control-plane call, `over_cap` when a
    team's sandbox would start or resume."""

    def __init__(
        self, limits: Limits | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits or Limits()
        self.clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def set(self, limits: Limits) -> None:
        self.limits = limits
        self._buckets.clear()

    def admit(self, key: str, method: str, path: str) -> Refusal | None:
        lim = self.limits
        if lim.api_requests is not None:
            rate = lim.api_requests / lim.api_period_seconds
            refused = self._take(key, "api", rate, lim.api_requests)
            if refused:
                return refused
        if lim.creates_per_second is not None and is_create(method, path):
            rate = lim.creates_per_second
            burst = lim.create_burst or max(1, math.ceil(rate))
            return self._take(key, "create", rate, burst)
        return None

    def over_cap(self, running: int) -> Refusal | None:
        cap = self.limits.concurrent_sandboxes
        if cap is None or running < cap:
            return None
        return Refusal(
            f"you have reached the maximum number of concurrent E2B sandboxes ({cap}). "
            "If you need more, please visit 'https://e2b.dev/docs/billing'",
            {},
        )

    def _take(self, key: str, name: str, rate: float, burst: int) -> Refusal | None:
        t = self.clock()
        b = self._buckets.setdefault((key, name), _Bucket(float(burst), t))
        b.tokens = min(float(burst), b.tokens + (t - b.at) * rate)
        b.at = t
        if b.tokens >= 1.0:
            b.tokens -= 1.0
            return None
        wait = (1.0 - b.tokens) / rate
        full = (burst - b.tokens) / rate
        return Refusal(
            RATE_LIMITED,
            {
                "Retry-After": str(max(1, math.ceil(wait))),
                "RateLimit-Limit": str(burst),
                "RateLimit-Remaining": "0",
                "RateLimit-Reset": str(math.ceil(full)),
            },
        )

    async def admin(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.set(Limits())
        elif request.method == "POST":
            try:
                limits = parse_body(await request.body())
            except ValueError as e:
                return bad_request(e)
            self.set(limits)
        return JSONResponse({"limits": asdict(self.limits), "presets": list(PRESETS)})


def is_create(method: str, path: str) -> bool:
    return method == "POST" and path.rstrip("/") in ("/sandboxes", "/v2/sandboxes")
