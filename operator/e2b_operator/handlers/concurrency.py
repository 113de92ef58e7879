"""Bounded concurrency for the many small E2B calls of one reconcile pass."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any


async def gather_bounded(coros: list[Awaitable[Any]], limit: int) -> list[Any]:
    """Run at most ``limit`` at once; exceptions are returned in place of results."""
    sem = asyncio.Semaphore(limit)

    async def bounded(c: Awaitable[Any]) -> Any:
        async with sem:
            return await c

    return await asyncio.gather(*(bounded(c) for c in coros), return_exceptions=True)
