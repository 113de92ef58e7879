"""What the operator's and the gateway's Prometheus metrics share: no ``*_created`` series,
the latency buckets, and the ASGI middleware that times HTTP requests.

Each process keeps its own metrics module (``metrics.py``, ``gateway/metrics.py``), so
neither exposes the other's series; e2b-local has its own (``e2b_local/prom.py``, see
ARCHITECTURE.md, Metrics).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import Counter, Histogram, disable_created_metrics
from starlette.types import ASGIApp, Message, Receive, Scope, Send

disable_created_metrics()  # no *_created series: one more per counter, for nothing we chart

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
"""Seconds: from a cached answer to a five-minute stream or command."""


class Instrumented:
    """ASGI middleware: counts every HTTP request in ``requests`` (its labels, then the
    status code) and times it in ``duration`` (its labels), under the labels ``labels(scope)``
    gives once the app has answered (routing has set ``scope["route"]`` by then)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        labels: Callable[[Scope], tuple[str, ...]],
        requests: Counter,
        duration: Histogram,
    ) -> None:
        self.app, self.labels = app, labels
        self.requests, self.duration = requests, duration

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, code = time.monotonic(), 500

        async def sending(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            labels = self.labels(scope)
            self.requests.labels(*labels, str(code)).inc()
            self.duration.labels(*labels).observe(time.monotonic() - started)
