"""until_signalled: the first Ctrl-C/SIGTERM cancels the work (its cleanup runs), a second kills;
in a real process started with SIGINT ignored, as a shell starts a background job."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from e2b_operator.toolkit import interrupts
from e2b_operator.toolkit.interrupts import until_signalled

CHILD = """
import asyncio, runpy, signal, sys
until_signalled = runpy.run_path(sys.argv[2])["until_signalled"]  # stdlib only: starts fast

signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited from a shell's background job

async def work():
    try:
        print("working", flush=True)
        await asyncio.sleep(3600)
    finally:
        print("cleaning up", flush=True)
        if sys.argv[1] == "hang":
            await asyncio.sleep(3600)

async def main():
    result = await until_signalled(work(), on_stop=lambda s: print("stop", s.name, flush=True))
    print("returned", result, flush=True)

asyncio.run(main())
"""


def child(mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, mode, interrupts.__file__], stdout=subprocess.PIPE, text=True
    )


def next_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline().strip()


async def test_returns_what_the_work_returns() -> None:
    async def work() -> int:
        return 7

    assert await until_signalled(work()) == 7


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_first_signal_cancels_and_cleanup_runs(sig: signal.Signals) -> None:
    proc = child("clean")
    try:
        assert next_line(proc) == "working"
        proc.send_signal(sig)
        assert [next_line(proc) for _ in range(3)] == [
            f"stop {sig.name}",
            "cleaning up",
            "returned None",
        ]
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        proc.wait()


def test_second_signal_kills_during_a_hanging_cleanup() -> None:
    proc = child("hang")
    try:
        assert next_line(proc) == "working"
        proc.send_signal(signal.SIGINT)
        assert [next_line(proc) for _ in range(2)] == ["stop SIGINT", "cleaning up"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == -signal.SIGINT
    finally:
        proc.kill()
        proc.wait()
