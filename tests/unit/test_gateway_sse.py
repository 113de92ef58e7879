"""SSE encoding of event dicts: messages, keep-alives while waiting, a failure as `error`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from e2b_operator.gateway import sse
from e2b_operator.toolkit.cluster import NotFoundError


async def slow_then_fail() -> AsyncIterator[dict]:
    yield {"event": "output", "stream": "stdout", "line": "a"}
    await asyncio.sleep(0.25)
    yield {"event": "result", "status": "success"}
    raise NotFoundError("execution 'x' not found in namespace n")


async def test_messages_keepalives_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sse, "KEEPALIVE_SECONDS", 0.05)
    chunks = [c async for c in sse.stream(slow_then_fail())]
    assert chunks[0] == 'event: output\ndata: {"stream": "stdout", "line": "a"}\n\n'
    assert ": keep-alive\n\n" in chunks[1:-2]
    assert chunks[-2] == 'event: result\ndata: {"status": "success"}\n\n'
    name, data = chunks[-1].split("\n")[:2]
    assert name == "event: error"
    assert json.loads(data.removeprefix("data: "))["code"] == "NotFound"
