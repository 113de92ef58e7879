"""Exact timeouts, on_timeout pause with auto_resume, concurrent pause/resume, keep-alive."""

from __future__ import annotations

import concurrent.futures as cf
import socket
import time

import pytest
from e2b import Sandbox, SandboxState
from e2b.exceptions import SandboxException, SandboxNotFoundException

from .conftest import LocalServer

# The server sets endAt when set_timeout arrives, before the SDK call returns; the slack only
# covers clock granularity, not an expiry loop.
TIMEOUT_SLACK_S = 0.05


def _sleep_until(t: float) -> None:
    time.sleep(max(0.0, t - time.monotonic()))


def test_gone_everywhere_the_moment_the_timeout_passes(local: LocalServer) -> None:
    sbx = Sandbox.create(timeout=120, **local.kw)
    try:
        sbx.set_timeout(2)
        deadline = time.monotonic() + 2 + TIMEOUT_SLACK_S
        assert sbx.commands.run("echo alive").stdout == "alive\n"
        assert sbx.get_info().state == SandboxState.RUNNING
        _sleep_until(deadline)
        with pytest.raises(SandboxNotFoundException):
            Sandbox.connect(sbx.sandbox_id, **local.kw)
        with pytest.raises(SandboxNotFoundException):
            sbx.get_info()
        with pytest.raises(SandboxException):
            sbx.commands.run("echo still-here")
        assert sbx.sandbox_id not in [i.sandbox_id for i in Sandbox.list(**local.kw).next_items()]
        assert not sbx.kill()
    finally:
        Sandbox.kill(sbx.sandbox_id, **local.kw)


def test_ten_concurrent_pauses_one_wins_none_drop(local: LocalServer) -> None:
    sbx = Sandbox.create(**local.kw)
    try:
        with cf.ThreadPoolExecutor(10) as ex:
            results = list(ex.map(lambda _: sbx.beta_pause(), range(10)))
        assert sorted(results) == [False] * 9 + [True]  # 409 for all but one
        assert sbx.get_info().state == SandboxState.PAUSED
    finally:
        sbx.kill()


def test_mixed_pause_resume_end_in_the_last_calls_state(local: LocalServer) -> None:
    sbx = Sandbox.create(**local.kw)
    pid = sbx.commands.run("sleep 600", background=True).pid

    def pause() -> object:
        return sbx.beta_pause()

    def resume() -> object:
        return Sandbox.connect(sbx.sandbox_id, **local.kw).sandbox_id

    try:
        for last in (pause, resume, pause, resume):
            with cf.ThreadPoolExecutor(8) as ex:
                futures = [ex.submit(pause if i % 2 else resume) for i in range(8)]
                outcomes = [f.result() for f in futures]  # any exception fails the test
            assert all(o in (True, False, sbx.sandbox_id) for o in outcomes)
            last()
            want = SandboxState.PAUSED if last is pause else SandboxState.RUNNING
            assert sbx.get_info().state == want
        # The last call resumed it, and the frozen process lived through every pause.
        assert sbx.commands.run(f"kill -0 {pid} && echo kept").stdout == "kept\n"
    finally:
        sbx.kill()


def test_kill_racing_pauses(local: LocalServer) -> None:
    sbx = Sandbox.create(**local.kw)

    def pause() -> object:
        try:
            return sbx.beta_pause()
        except SandboxNotFoundException:  # 404 once the kill went first
            return "gone"

    with cf.ThreadPoolExecutor(6) as ex:
        kills = [ex.submit(sbx.kill) for _ in range(3)]
        pauses = [ex.submit(pause) for _ in range(3)]
        killed = sorted(f.result() for f in kills)
        paused = [f.result() for f in pauses]
    assert killed == [False, False, True]  # one 204, then 404s
    assert all(p in (True, False, "gone") for p in paused) and paused.count(True) <= 1
    with pytest.raises(SandboxNotFoundException):
        sbx.get_info()


def test_on_timeout_pause_then_auto_resume_round_trip(local: LocalServer) -> None:
    lifecycle = {"on_timeout": "pause", "auto_resume": True}
    sbx = Sandbox.create(timeout=120, lifecycle=lifecycle, **local.kw)  # type: ignore[arg-type]
    manual = Sandbox.create(timeout=120, lifecycle={"on_timeout": "pause"}, **local.kw)
    try:
        info = sbx.get_info()
        assert info.lifecycle == {"auto_resume": True, "on_timeout": "pause"}
        sbx.files.write("/tmp/kept", "state")
        pid = sbx.commands.run("sleep 600", background=True).pid
        sbx.set_timeout(1)
        manual.set_timeout(1)
        _sleep_until(time.monotonic() + 1 + TIMEOUT_SLACK_S)
        assert Sandbox.get_info(sbx.sandbox_id, **local.kw).state == SandboxState.PAUSED
        assert manual.get_info().state == SandboxState.PAUSED

        # Traffic to envd resumes it, with its processes and files.
        out = sbx.commands.run(f"kill -0 {pid} && cat /tmp/kept").stdout
        assert out == "state"
        assert sbx.get_info().state == SandboxState.RUNNING

        # Without auto_resume, envd answers "not found" until connect resumes it.
        with pytest.raises(SandboxException):
            manual.commands.run("true")
        assert manual.get_info().state == SandboxState.PAUSED
        again = Sandbox.connect(manual.sandbox_id, **local.kw)
        assert again.commands.run("echo back").stdout == "back\n"
    finally:
        sbx.kill()
        manual.kill()


def test_idle_keep_alive_connections_are_not_closed_under_the_sdk(local: LocalServer) -> None:
    """The SDK pools connections for 300 s; a server closing them sooner races requests."""
    host, port = local.url.removeprefix("http://").split(":")
    request = f"GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(request)
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        time.sleep(6)  # uvicorn's default keep-alive (5 s) would have closed it by now
        s.sendall(request)
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
