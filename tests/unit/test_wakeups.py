"""handlers.wakeups: a sleeping loop wakes on a poke, on its timer, or when stopped."""

from __future__ import annotations

import asyncio

from e2b_operator.handlers.wakeups import Waker


class Stopped:
    """What a loop sees of kopf.DaemonStopped: truthy once stopped, and wait()."""

    def __init__(self) -> None:
        self.flag = asyncio.Event()

    def __bool__(self) -> bool:
        return self.flag.is_set()

    async def wait(self) -> None:
        await self.flag.wait()


async def test_a_poke_a_stop_and_the_timer_each_end_a_sleep() -> None:
    waker, stopped = Waker(), Stopped()
    sleeping = asyncio.create_task(waker.sleep(3600, stopped))
    await asyncio.sleep(0)
    waker.poke()
    await asyncio.wait_for(sleeping, 60)  # the poke, not the hour
    await asyncio.wait_for(waker.sleep(0, stopped), 60)  # the timer
    sleeping = asyncio.create_task(waker.sleep(3600, stopped))
    await asyncio.sleep(0)
    stopped.flag.set()
    await asyncio.wait_for(sleeping, 60)  # stopped
    await asyncio.wait_for(waker.sleep(3600, stopped), 60)  # already stopped: no sleep
