"""The synchronous SDK against e2b-local: sandbox calls, commands, files."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from e2b import CommandExitException, Sandbox, SandboxQuery, SandboxState
from e2b.exceptions import (
    FileNotFoundException,
    SandboxNotFoundException,
    TimeoutException,
)

from support import wait_for

from .conftest import LocalServer


@pytest.fixture
def sbx(local: LocalServer):
    s = Sandbox.create(envs={"FROM_CREATE": "yes"}, metadata={"suite": "sync"}, **local.kw)
    yield s
    s.kill()


def test_commands_stream_exit_code_env_cwd(sbx: Sandbox) -> None:
    chunks: list[str] = []
    r = sbx.commands.run(
        "echo out; echo err >&2; pwd; echo $FROM_CREATE $PER_CMD",
        envs={"PER_CMD": "cmd"},
        cwd="/tmp",
        on_stdout=chunks.append,
    )
    assert r.exit_code == 0
    assert r.stdout.splitlines() == ["out", "/tmp", "yes cmd"]
    assert r.stderr == "err\n"
    assert "".join(chunks) == r.stdout
    with pytest.raises(CommandExitException) as ei:
        sbx.commands.run("echo bad; exit 7")
    assert ei.value.exit_code == 7 and ei.value.stdout == "bad\n"


def test_commands_timeout_kills(sbx: Sandbox) -> None:
    """The command's timeout ends the call and kills the command (that can never finish by
    itself within the test: no clock is asserted, a loaded host may be slow)."""
    with pytest.raises(TimeoutException):
        sbx.commands.run("sleep 3600", timeout=1)
    wait_for(
        lambda: "sleep 3600" not in sbx.commands.run("ps -eo args").stdout,
        what="the timed-out command to be killed",
    )
    assert not sbx.commands.list(), "a timed-out command is still listed"


def test_a_request_larger_than_one_socket_read(sbx: Sandbox) -> None:
    """A command whose envs outsize one read of the control socket (about 36 KiB: the part
    carrying the fds) reaches the sandbox whole (it was cut, and the agent hung up on it)."""
    big = {f"BIG{i}": f"{i}" * 60_000 for i in range(4)}
    r = sbx.commands.run("for v in BIG0 BIG1 BIG2 BIG3; do printenv $v | wc -c; done", envs=big)
    assert r.stdout.split() == ["60001"] * 4


def test_background_list_kill_connect_stdin(sbx: Sandbox) -> None:
    h = sbx.commands.run("sleep 300", background=True)
    assert h.pid in [p.pid for p in sbx.commands.list()]
    assert sbx.commands.kill(h.pid)
    with pytest.raises(CommandExitException):
        h.wait()
    assert h.pid not in [p.pid for p in sbx.commands.list()]

    h2 = sbx.commands.run("sleep 0.5; echo late", background=True)
    again = sbx.commands.connect(h2.pid)
    assert again.wait().stdout == "late\n"

    h3 = sbx.commands.run("read line; echo got:$line", background=True, stdin=True)
    sbx.commands.send_stdin(h3.pid, "abc\n")
    assert h3.wait().stdout == "got:abc\n"


def test_files_roundtrip_and_fs_calls(sbx: Sandbox) -> None:
    info = sbx.files.write("notes/a.txt", "hello")
    assert info.path == "/home/user/notes/a.txt"
    assert sbx.files.read("/home/user/notes/a.txt") == "hello"
    assert sbx.commands.run("cat ~/notes/a.txt; stat -c %U notes/a.txt").stdout == "hellouser\n"
    blob = bytes(range(256)) * 4096
    sbx.files.write("/tmp/blob.bin", blob)
    assert sbx.files.read("/tmp/blob.bin", format="bytes") == blob
    assert sbx.files.make_dir("/tmp/d1/d2")
    assert not sbx.files.make_dir("/tmp/d1/d2")
    names = [e.name for e in sbx.files.list("/tmp")]
    assert {"blob.bin", "d1"} <= set(names)
    st = sbx.files.get_info("/tmp/blob.bin")
    assert st.size == len(blob) and st.type.value == "file"
    sbx.files.rename("/tmp/blob.bin", "/tmp/d1/moved.bin")
    assert sbx.files.exists("/tmp/d1/moved.bin") and not sbx.files.exists("/tmp/blob.bin")
    sbx.files.remove("/tmp/d1")
    assert not sbx.files.exists("/tmp/d1")
    with pytest.raises(FileNotFoundException):
        sbx.files.read("/nope/missing")


def test_symlink_cannot_escape_to_host(sbx: Sandbox, tmp_path) -> None:
    secret = tmp_path / "host-secret.txt"
    secret.write_text("host only")
    sbx.commands.run(f"ln -s {secret} /tmp/link; ln -s /etc/shadow /tmp/sh")
    with pytest.raises(FileNotFoundException):
        sbx.files.read("/tmp/link")
    assert "host only" not in sbx.commands.run(f"cat {secret} 2>&1 || true").stdout


def test_info_list_timeout_pause_connect(local: LocalServer) -> None:
    s = Sandbox.create(metadata={"suite": "sync", "k": "v"}, timeout=120, **local.kw)
    try:
        info = s.get_info()
        assert info.metadata == {"suite": "sync", "k": "v"}
        assert info.state == SandboxState.RUNNING
        s.set_timeout(30)
        assert (s.get_info().end_at - info.started_at).total_seconds() < 60
        q = SandboxQuery(metadata={"k": "v"})
        found = Sandbox.list(query=q, **local.kw).next_items()
        assert [i.sandbox_id for i in found] == [s.sandbox_id]
        assert s.pause()
        assert not s.pause()
        assert not s.is_running()
        paused = SandboxQuery(metadata={"k": "v"}, state=[SandboxState.PAUSED])
        assert [i.sandbox_id for i in Sandbox.list(query=paused, **local.kw).next_items()] == [
            s.sandbox_id
        ]
        s2 = Sandbox.connect(s.sandbox_id, **local.kw)
        assert s2.is_running()
        assert s2.commands.run("echo back").stdout == "back\n"
    finally:
        assert s.kill()
    assert not Sandbox.kill(s.sandbox_id, **local.kw)
    with pytest.raises(SandboxNotFoundException):
        Sandbox.connect(s.sandbox_id, **local.kw)


def test_pagination(local: LocalServer) -> None:
    made = [Sandbox.create(metadata={"page": "p1"}, **local.kw) for _ in range(5)]
    try:
        pager = Sandbox.list(query=SandboxQuery(metadata={"page": "p1"}), limit=2, **local.kw)
        pages = []
        while pager.has_next:
            pages.append([i.sandbox_id for i in pager.next_items()])
        assert [len(p) for p in pages] == [2, 2, 1]
        assert sorted(x for p in pages for x in p) == sorted(s.sandbox_id for s in made)
    finally:
        for s in made:
            s.kill()


def test_idempotency_key(local: LocalServer) -> None:
    a = Sandbox.create(idempotency_key="same-key-1", **local.kw)
    b = Sandbox.create(idempotency_key="same-key-1", **local.kw)
    try:
        assert a.sandbox_id == b.sandbox_id
    finally:
        a.kill()


def test_idempotency_key_sent_again_while_the_first_create_starts(local: LocalServer) -> None:
    """A client that stopped waiting sends the same create again while the first still
    starts: one sandbox, returned to both (it made two)."""
    meta = {"suite": "sync-same-key"}
    with ThreadPoolExecutor(2) as pool:
        made = list(
            pool.map(
                lambda _: Sandbox.create(idempotency_key="same-key-2", metadata=meta, **local.kw),
                range(2),
            )
        )
    try:
        assert made[0].sandbox_id == made[1].sandbox_id
        listed = Sandbox.list(query=SandboxQuery(metadata=meta), **local.kw).next_items()
        assert [s.sandbox_id for s in listed] == [made[0].sandbox_id]
    finally:
        for s in {s.sandbox_id: s for s in made}.values():
            s.kill()


def test_pages_go_on_after_the_cursor_when_its_sandbox_is_gone(local: LocalServer) -> None:
    """Keyset pages, as E2B's: killing the last sandbox of a page moves nothing (the next
    page restarted from the first, listing sandboxes twice)."""
    meta = {"suite": "sync-pages"}
    made = [Sandbox.create(metadata=meta, **local.kw) for _ in range(3)]
    try:
        pages = Sandbox.list(query=SandboxQuery(metadata=meta), limit=1, **local.kw)
        seen = [s.sandbox_id for s in pages.next_items()]
        seen += [s.sandbox_id for s in pages.next_items()]
        Sandbox.kill(seen[-1], **local.kw)  # the cursor's sandbox
        while pages.has_next:
            seen += [s.sandbox_id for s in pages.next_items()]
        assert sorted(seen) == sorted(s.sandbox_id for s in made), seen
    finally:
        for s in made:
            s.kill()


def test_expiry_kills_or_pauses(local: LocalServer) -> None:
    dying = Sandbox.create(timeout=1, **local.kw)
    pausing = Sandbox.create(timeout=1, lifecycle={"on_timeout": "pause"}, **local.kw)
    try:
        time.sleep(2.0)
        with pytest.raises(SandboxNotFoundException):
            dying.get_info()
        assert pausing.get_info().state == SandboxState.PAUSED
    finally:
        pausing.kill()
