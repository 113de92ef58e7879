"""e2b-local's own Prometheus metrics (not a sandbox's ``get_metrics``: that is metrics.py).

GET /metrics on the API port, without the API key like /health: requests by route and status,
sandboxes by state, creates and template builds. Labels are route templates and results,
never sandbox ids, template names or client-chosen paths.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

disable_created_metrics()  # no *_created series: one more per counter, for nothing we chart
REQUESTS = Counter(
    "e2b_local_http_requests_total",
    "HTTP requests by route (control-plane route template, envd service, sandbox port "
    "traffic, upload) and status code.",
    ["route", "code"],
)
DURATION = Histogram(
    "e2b_local_http_request_duration_seconds",
    "HTTP requests until the response ended (envd streams: until the command ended).",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
CREATES = Counter("e2b_local_sandbox_creates_total", "Sandboxes created (idempotent repeats not).")
START_DURATION = Histogram(
    "e2b_local_sandbox_start_duration_seconds",
    "Starting a sandbox's container, and its template's start command until ready.",
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
BUILDS = Histogram(
    "e2b_local_template_build_duration_seconds",
    "Template builds by result (ready or error).",
    ["result"],
    buckets=(0.1, 1, 5, 10, 30, 60, 120, 300, 600, 1800),
)


class SandboxStates(Collector):
    """e2b_local_sandboxes{state}: read from the runtime at each scrape."""

    def __init__(self, states: Callable[[], dict[str, int]]) -> None:
        self.states = states

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "e2b_local_sandboxes",
            "Sandboxes by state: starting, running, paused.",
            labels=["state"],
        )
        for state, n in sorted(self.states().items()):
            gauge.add_metric([state], n)
        yield gauge


class Instrumented:
    """ASGI wrapper: serves GET /metrics and records every other HTTP request under the
    route ``label(scope)`` names."""

    def __init__(
        self, app: Any, label: Callable[[dict[str, Any]], str], states: Callable[[], dict[str, int]]
    ) -> None:
        self.app, self.label = app, label
        REGISTRY.register(SandboxStates(states))

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = self.label(scope)
        if route == "/metrics":
            await _send(send, generate_latest())
            return
        started, code = time.monotonic(), 500

        async def sending(message: dict[str, Any]) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            REQUESTS.labels(route, str(code)).inc()
            DURATION.labels(route).observe(time.monotonic() - started)


async def _send(send: Any, body: bytes) -> None:
    headers = [(b"content-type", CONTENT_TYPE_LATEST.encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
