"""PTY, directory watching and metrics through the unmodified SDK."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import time

import pytest
from e2b import AsyncSandbox, CommandExitException, PtySize, Sandbox
from e2b.exceptions import NotFoundException, SandboxException

from .conftest import LocalServer


def _wait_for_samples(sbx: Sandbox, n: int) -> list:
    deadline = time.monotonic() + 30
    while len(samples := sbx.get_metrics()) < n and time.monotonic() < deadline:
        time.sleep(0.2)
    return samples


def _sample_where(sbx: Sandbox, check, after, timeout: float = 60):
    """The first sample after `after` passing `check` (polling; the host may be busy)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in sbx.get_metrics(start=after):
            if m.timestamp > after and check(m):
                return m
        time.sleep(0.5)
    return None


def test_metrics_move_under_load(local: LocalServer) -> None:
    sbx = Sandbox.create(**local.kw)
    try:
        idle = _wait_for_samples(sbx, 2)[-1]
        assert idle.cpu_count == 2 and idle.mem_total == 1024 << 20
        assert idle.cpu_used_pct < 50 and 0 <= idle.disk_used < idle.disk_total
        # Busy CPU, 200 MiB of resident memory and 50 MiB written to the sandbox's disk, for
        # as long as the check may wait: a busy host gives the loop only a share of a core.
        sbx.commands.run(
            "python3 -c 'b = bytearray(200 << 20); import time; t = time.time()\n"
            "while time.time() - t < 90: pass' &"
            " head -c 50M /dev/urandom > /tmp/blob; sleep 0.1",
        )
        loaded = _sample_where(
            sbx,
            lambda m: (
                m.cpu_used_pct > idle.cpu_used_pct
                and m.mem_used > idle.mem_used + (150 << 20)
                and m.disk_used > idle.disk_used + (45 << 20)
            ),
            after=idle.timestamp,
        )
        assert loaded is not None, sbx.get_metrics()[-3:]
        start = loaded.timestamp
        assert all(
            m.timestamp >= start.replace(microsecond=0) for m in sbx.get_metrics(start=start)
        )
    finally:
        sbx.kill()


def _events_until(handle, want: set[tuple[str, str]]) -> set[tuple[str, str]]:
    seen: set[tuple[str, str]] = set()
    deadline = time.monotonic() + 10
    while not want <= seen and time.monotonic() < deadline:
        seen |= {(e.name, e.type.value) for e in handle.get_new_events()}
        time.sleep(0.05)
    return seen


def test_watch_dir_sees_writes_recursively_and_stops(local: LocalServer) -> None:
    sbx = Sandbox.create(**local.kw)
    try:
        sbx.files.make_dir("/home/user/w/sub")
        flat = sbx.files.watch_dir("/home/user/w")
        deep = sbx.files.watch_dir("/home/user/w", recursive=True)
        sbx.files.write("/home/user/w/a.txt", "x")
        sbx.commands.run(
            "cd /home/user/w && echo y >> a.txt && mv a.txt b.txt && chmod 600 b.txt"
            " && echo z > sub/c.txt && mkdir new && echo n > new/d.txt && rm b.txt"
        )
        want = {
            ("a.txt", "create"),
            ("a.txt", "write"),
            ("a.txt", "rename"),
            ("b.txt", "create"),
            ("b.txt", "chmod"),
            ("b.txt", "remove"),
        }
        assert want <= _events_until(flat, want)
        deep_want = {("sub/c.txt", "create"), ("new", "create"), ("new/d.txt", "write")}
        assert deep_want <= _events_until(deep, deep_want)
        flat.stop()
        with pytest.raises(SandboxException):
            flat.get_new_events()
        with pytest.raises(NotFoundException):
            sbx.files.watch_dir("/home/user/missing")
        # The watched path is resolved inside the sandbox: a symlink out of it stays inside.
        sbx.commands.run("ln -s / /home/user/w/root")
        escape = sbx.files.watch_dir("/home/user/w/root/tmp")
        sbx.commands.run("touch /tmp/inside")
        assert ("inside", "create") in _events_until(escape, {("inside", "create")})
    finally:
        sbx.kill()


async def test_async_watch_dir_streams_events(local: LocalServer) -> None:
    sbx = await AsyncSandbox.create(**local.kw)
    try:
        got: list[tuple[str, str]] = []
        seen = asyncio.Event()

        def on_event(e) -> None:
            got.append((e.name, e.type.value))
            if e.name == "f.txt":
                seen.set()

        handle = await sbx.files.watch_dir("/tmp", on_event=on_event)
        await sbx.files.write("/tmp/f.txt", "hello")
        await asyncio.wait_for(seen.wait(), 10)
        assert ("f.txt", "create") in got
        await handle.stop()
    finally:
        await sbx.kill()


def test_pty_echo_resize_and_kill(local: LocalServer) -> None:
    sbx = Sandbox.create(**local.kw)
    try:
        term = sbx.pty.create(PtySize(rows=24, cols=80))
        sbx.pty.send_stdin(term.pid, b"tty; echo hi-$((6*7)); stty size > /tmp/before\n")
        sbx.commands.run("for i in $(seq 200); do [ -s /tmp/before ] && exit; sleep 0.05; done")
        assert sbx.files.read("/tmp/before") == "24 80\n"
        sbx.pty.resize(term.pid, PtySize(rows=40, cols=120))
        sbx.pty.send_stdin(term.pid, b"stty size; whoami; exit 3\n")
        out = bytearray()
        with pytest.raises(CommandExitException) as ei:
            term.wait(on_pty=out.extend)
        assert ei.value.exit_code == 3
        text = out.decode(errors="replace")
        assert "/dev/pts/" in text and "40 120" in text
        assert "hi-42" in text and "user" in text
        # kill ends a terminal that is still running; resize of a non-terminal is refused.
        other = sbx.pty.create(PtySize(rows=10, cols=10))
        assert sbx.pty.kill(other.pid)
        with pytest.raises(CommandExitException):
            other.wait()
        plain = sbx.commands.run("sleep 30", background=True)
        with pytest.raises(SandboxException):
            sbx.pty.resize(plain.pid, PtySize(rows=1, cols=1))
        with pytest.raises(SandboxException):
            sbx.pty.send_stdin(plain.pid, b"x")
    finally:
        sbx.kill()


def test_input_a_process_does_not_read_never_blocks_the_server(local: LocalServer) -> None:
    sbx = Sandbox.create(**local.kw)
    try:
        h = sbx.commands.run("sleep 60", background=True, stdin=True)
        with cf.ThreadPoolExecutor(1) as ex:
            blocked = ex.submit(sbx.commands.send_stdin, h.pid, "x" * (1 << 20))  # > a pipe
            time.sleep(0.5)
            assert not blocked.done()
            assert sbx.commands.run("echo serving").stdout == "serving\n"
            sbx.commands.kill(h.pid)
            with pytest.raises(SandboxException):
                blocked.result(timeout=30)
    finally:
        sbx.kill()
