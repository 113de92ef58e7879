"""A running execution's output, published to its status while the script runs.

Each stream's last 4 KiB and its total length go to status (stdoutTail, stdoutChars, ...) at
most every FLUSH_SECONDS, and only when output arrived, so a follower watching the object
(the toolkit, the gateway's SSE, `kubectl e2b exec --follow`) sees lines as they are printed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from ..reconcile.execution import tail

FLUSH_SECONDS = 0.1
"""Shortest interval between two status writes of one execution's output."""
STREAMS = ("stdout", "stderr")


class LiveOutput:
    """Collects output chunks; `publish` writes them with `write(**status_fields)`."""

    def __init__(self, write: Callable[..., Awaitable[Any]]) -> None:
        self._write = write
        self._tails = dict.fromkeys(STREAMS, "")
        self._chars = dict.fromkeys(STREAMS, 0)
        self._changed = asyncio.Event()

    def collector(self, stream: str) -> Callable[[str], None]:
        """The callback that receives that stream's chunks."""

        def add(chunk: str) -> None:
            self._tails[stream] = tail(self._tails[stream] + chunk)
            self._chars[stream] += len(chunk)
            self._changed.set()

        return add

    def fields(self) -> dict[str, Any]:
        """The status fields of the output so far (the character totals)."""
        return {f"{s}_chars": self._chars[s] for s in STREAMS}

    async def publish(self) -> None:
        """Until cancelled: write tails and totals whenever output arrived."""
        while True:
            await self._changed.wait()
            self._changed.clear()
            await self._write(**self.fields(), **{f"{s}_tail": self._tails[s] for s in STREAMS})
            await asyncio.sleep(FLUSH_SECONDS)
