"""Server-Sent Events: an async iterator of event dicts as a text/event-stream body."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from .errors import problem

KEEPALIVE_SECONDS = 15.0
"""A comment line is sent after this long without events, so proxies keep the stream open."""
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def encode(event: dict[str, Any]) -> str:
    """One SSE message: `event: <event["event"]>` and the rest as one JSON data line."""
    data = {k: v for k, v in event.items() if k != "event"}
    return f"event: {event['event']}\ndata: {json.dumps(data, default=str)}\n\n"


async def stream(events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[str]:
    """The SSE text of `events`, with keep-alives; a failure ends it with an `error` event
    (the problem JSON), since the status line has already been sent."""
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for event in events:
                await queue.put(event)
        except Exception as exc:
            await queue.put({"event": "error", **problem(exc).body()})
        await queue.put(None)

    task = asyncio.create_task(pump())
    try:
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if event is None:
                return
            yield encode(event)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
