"""The gateway's /metrics, scraped from the real process: requests by route template and code."""

from __future__ import annotations

import httpx

from e2b_operator import localstack
from support import sample, scrape

from .gateway_support import Users

REQUESTS = "e2b_operator_gateway_requests_total"
LATENCY = "e2b_operator_gateway_request_duration_seconds_count"


def test_requests_are_counted_by_route_template_and_code(
    gateway: localstack.Gateway, alice: httpx.Client, users: Users
) -> None:
    url = f"{gateway.url}/metrics"
    listed = {"method": "GET", "route": "/e2b/templates/registry/list"}
    shown = {"method": "GET", "route": "/e2b/templates/registry/template/{id}"}
    before = scrape(url)
    assert alice.get("/e2b/templates/registry/list").status_code == 200
    assert alice.get("/e2b/templates/registry/template/no-such-template").status_code == 404
    with users.client(gateway, None) as anonymous:
        assert anonymous.get("/e2b/templates/registry/list").status_code == 401
        assert anonymous.get("/no/such/path-x1y2").status_code == 404
    after = scrape(url)

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert grew(REQUESTS, **listed, code="200") == 1
    assert grew(REQUESTS, **listed, code="401") == 1
    assert grew(REQUESTS, **shown, code="404") == 1
    assert grew(REQUESTS, method="other", route="unmatched", code="404") == 1
    assert grew(LATENCY, **listed) == 2
    values = {v for _, pairs in after for _, v in pairs}
    assert not {"no-such-template", "/no/such/path-x1y2"} & values, "paths are not labels"
