"""The gateway's Prometheus metrics: requests by route template and status, and their latency.

``/metrics`` is served on the gateway's own port without a token, like ``/healthz``: it holds
counts per route template, never paths, names, namespaces or users.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.responses import Response
from starlette.types import Scope

from ..prometheus import LATENCY_BUCKETS, Instrumented

REQUESTS = Counter(
    "e2b_operator_gateway_requests_total",
    "Gateway HTTP requests by method, route template and status code.",
    ["method", "route", "code"],
)
DURATION = Histogram(
    "e2b_operator_gateway_request_duration_seconds",
    "Gateway HTTP requests until the response ended (an SSE stream: until it closed).",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
UNMATCHED = "unmatched"
"""The route of a request no route matched (its path is not a label: it is the caller's)."""


def route_labels(scope: Scope) -> tuple[str, str]:
    """(method, route template) of a request FastAPI has routed; neither comes from the
    caller unchecked (an unknown method is "other", an unmatched path UNMATCHED)."""
    route: Any = scope.get("route")
    method = scope["method"] if scope["method"] in getattr(route, "methods", ()) else "other"
    return method, getattr(route, "path", None) or UNMATCHED


def instrument(app: FastAPI) -> None:
    """Record the app's requests and serve them on GET /metrics."""

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(Instrumented, labels=route_labels, requests=REQUESTS, duration=DURATION)
