"""Per-object wake-up signals: watch events poke the object's reconcile loop."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


class Waker:
    """An event a loop sleeps on, with a timeout, until poked or stopped."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def poke(self) -> None:
        self._event.set()

    async def sleep(self, timeout: float, stopped: Any) -> None:
        """Return after ``timeout`` seconds, on a poke, or when kopf stops the daemon."""
        waits = {
            asyncio.ensure_future(self._event.wait()),
            asyncio.ensure_future(stopped.wait()),
        }
        try:
            await asyncio.wait(waits, timeout=max(timeout, 0), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._event.clear()
