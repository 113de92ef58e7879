"""Per-object wake-up signals: watch events poke the object's reconcile loop."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


class Waker:
    """An event a loop sleeps on, with a timeout, until poked or stopped."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._stopped: Any = None
        self._watcher: asyncio.Task[None] | None = None

    def poke(self) -> None:
        self._event.set()

    async def sleep(self, timeout: float, stopped: Any) -> None:
        """Return after ``timeout`` seconds, on a poke, or when kopf stops the daemon
        (``stopped``, a kopf.DaemonStopped). A sleep makes no task: one per daemon pokes the
        waker when it is stopped (a thousand sleeping loops held two tasks each)."""
        if stopped is not self._stopped:
            self._stopped = stopped
            self._watcher = asyncio.ensure_future(self._poke_when(stopped))
        if not stopped:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(timeout, 0)):
                    await self._event.wait()
        self._event.clear()

    async def _poke_when(self, stopped: Any) -> None:
        await stopped.wait()
        self.poke()
