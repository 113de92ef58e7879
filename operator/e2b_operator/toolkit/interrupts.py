"""Stopping a long-running CLI command (e.g. `kubectl e2b logs -f`) by Ctrl-C or SIGTERM.

The first signal cancels the work so its cleanup runs (a `finally` may still await the
Kubernetes API); a second one ends the process at once by that signal's default action.
The handlers are installed on the running loop, so they act even when the process was
started with SIGINT ignored (as a shell does for a job it starts in the background without
job control; Go's signal.Notify overrides that the same way) and they wake the loop at once.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

T = TypeVar("T")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def until_signalled(
    work: Coroutine[Any, Any, T],
    *,
    signals: Iterable[signal.Signals] = STOP_SIGNALS,
    on_stop: Callable[[signal.Signals], None] | None = None,
) -> T | None:
    """Run `work` until it returns (its result) or one of `signals` arrives (None, once
    `work` has finished its cleanup). on_stop is told the first signal; a second signal
    kills the process by its default action, however long the cleanup takes."""
    loop = asyncio.get_running_loop()
    task = loop.create_task(work)
    received: list[signal.Signals] = []

    def handle(sig: signal.Signals) -> None:
        if received:
            signal.signal(sig, signal.SIG_DFL)
            os.kill(os.getpid(), sig)
            return
        received.append(sig)
        task.cancel()
        if on_stop:
            on_stop(sig)

    chosen = list(signals)
    for sig in chosen:
        loop.add_signal_handler(sig, handle, sig)
    try:
        return await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if not received or (current is not None and current.cancelling()):
            raise
        return None
    finally:
        for sig in chosen:
            loop.remove_signal_handler(sig)
