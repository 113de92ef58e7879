"""The E2B adapter against e2b-local that takes a request and never answers it: the
idempotent calls (a page of the listing, connecting to a running sandbox, kill, set_timeout)
are answered by their hedge, where they used to wait out their request timeout (twice it,
in fact, through the SDK's transport) and then fail."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from e2b import AsyncSandbox
from prometheus_client import REGISTRY

from e2b_operator.localstack import E2BLocal
from e2b_operator.sandboxes.backend import SandboxBackend
from e2b_operator.sandboxes.connection import Connection
from support import faults

HANG = "timeout=3600:1:1"  # the first matching request is taken and never answered


def hedges(operation: str) -> float:
    labels = {"operation": operation}
    return REGISTRY.get_sample_value("e2b_operator_e2b_hedged_requests_total", labels) or 0.0


def backend_of(e2b: E2BLocal) -> SandboxBackend:
    """A fresh adapter (no connected sandboxes cached)."""
    return SandboxBackend(Connection(api_key=e2b.api_key, api_url=e2b.url, sandbox_url=e2b.url))


@pytest.fixture
async def sandbox(e2b: E2BLocal) -> AsyncIterator[tuple[str, dict[str, str]]]:
    metadata = {"hedging-test": uuid.uuid4().hex[:12]}
    sbx = await AsyncSandbox.create(
        timeout=300, metadata=metadata, api_key=e2b.api_key, api_url=e2b.url, sandbox_url=e2b.url
    )
    yield sbx.sandbox_id, metadata
    await AsyncSandbox.kill(sbx.sandbox_id, api_key=e2b.api_key, api_url=e2b.url)


async def test_a_listing_whose_request_hangs_is_answered(e2b: E2BLocal, sandbox) -> None:
    sandbox_id, metadata = sandbox
    before = hedges("list")
    with faults(e2b, f"{HANG}@/v2/sandboxes") as rules:
        listed = await backend_of(e2b).list(metadata)
    assert rules[0]["hits"] == 1, rules  # the listing's first request did hang
    assert [s.sandbox_id for s in listed] == [sandbox_id]
    assert hedges("list") == before + 1


async def test_a_health_check_whose_connect_hangs_runs(e2b: E2BLocal, sandbox) -> None:
    sandbox_id, _ = sandbox
    before = hedges("connect")
    with faults(e2b, f"{HANG}@/v2/sandboxes/{sandbox_id}/connect") as rules:
        outcome = await backend_of(e2b).run(sandbox_id, "echo checked", timeout=30)
    assert rules[0]["hits"] == 1, rules
    assert (outcome.exit_code, outcome.stdout.strip()) == (0, "checked")
    assert hedges("connect") == before + 1


async def test_set_timeout_and_kill_whose_requests_hang_are_done(e2b: E2BLocal, sandbox) -> None:
    sandbox_id, metadata = sandbox
    backend = backend_of(e2b)
    with faults(e2b, f"{HANG}@/sandboxes/{sandbox_id}/timeout") as rules:
        await backend.set_timeout(sandbox_id, 600)
    assert rules[0]["hits"] == 1, rules
    (listed,) = await backend.list(metadata)
    assert listed.end_at is not None and listed.started_at is not None
    assert (listed.end_at - listed.started_at).total_seconds() > 500  # the new timeout holds
    with faults(e2b, f"{HANG}@/sandboxes/{sandbox_id}") as rules:
        await backend.kill(sandbox_id)
    assert rules[0]["hits"] == 1, rules
    assert await backend.list(metadata) == []
