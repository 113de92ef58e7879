"""Isolation guarantees, error mapping, fault injection and cleanup of e2b-local sandboxes."""

from __future__ import annotations

import os
import select
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from e2b import AsyncSandbox, CommandExitException, Sandbox
from e2b.exceptions import (
    AuthenticationException,
    NotFoundException,
    RateLimitException,
    SandboxException,
    SandboxNotFoundException,
)

from support import wait_for

from .conftest import LocalServer


def test_file_in_a_absent_from_b_and_host(local: LocalServer) -> None:
    a = Sandbox.create(**local.kw)
    b = Sandbox.create(**local.kw)
    try:
        a.commands.run("echo secret-a > /tmp/only-in-a; echo x > /home/user/a-home")
        a.commands.run("echo root-write > /usr/local/bin/a-tool", user="root")
        # sandbox root owns its whole filesystem, `/` included, as in E2B's VM
        mkdir = a.commands.run("mkdir /made-by-root && stat -c %U:%G / /usr", user="root")
        assert mkdir.stdout == "root:root\nroot:root\n"
        assert a.files.exists("/tmp/only-in-a")
        assert not b.files.exists("/tmp/only-in-a")
        assert not b.files.exists("/usr/local/bin/a-tool")
        for host_path in ("/tmp/only-in-a", "/home/user/a-home", "/usr/local/bin/a-tool"):
            assert not os.path.exists(host_path)
        # the host's private directories are not visible inside
        out = a.commands.run("ls -A /root /home /work 2>&1; true", user="root").stdout
        assert "main" not in out and "cloudsdk" not in out
        assert b.commands.run("ps -eo pid,args").stdout.count("\n") < 6
    finally:
        a.kill()
        b.kill()


def test_env_shows_only_what_was_passed(local: LocalServer) -> None:
    s = Sandbox.create(envs={"ONLY": "this"}, **local.kw)
    try:
        env = dict(
            line.split("=", 1)
            for line in s.commands.run("env", envs={"CMD_ENV": "1"}).stdout.splitlines()
        )
        assert env["ONLY"] == "this" and env["CMD_ENV"] == "1"
        allowed = {"ONLY", "CMD_ENV", "PATH", "HOME", "USER", "LOGNAME", "PWD", "SHLVL", "_"}
        assert set(env) <= allowed, set(env) - allowed
        assert (
            "must-not-leak"
            not in s.commands.run("cat /proc/1/environ | tr '\\0' '\\n'", user="root").stdout
        )
    finally:
        s.kill()


def test_every_sandbox_has_its_own_network_namespace(local: LocalServer) -> None:
    """Internet off: only `lo`. Internet on: `lo` and eth0; the host's loopback unreachable."""
    port = local.url.rsplit(":", 1)[1]
    probe = (
        f"curl -s -m 2 -o /dev/null -w '%{{http_code}}' http://127.0.0.1:{port}/health; "
        "echo rc=$?; ls /sys/class/net"
    )
    for internet, interfaces in ((False, ["lo"]), (True, ["eth0", "lo"])):
        s = Sandbox.create(allow_internet_access=internet, **local.kw)
        try:
            r = s.commands.run(probe)
            assert "rc=7" in r.stdout  # connection refused: the sandbox's own loopback
            assert r.stdout.split("rc=7\n")[1].split() == interfaces
        finally:
            s.kill()


def test_memory_limit_kills_allocator(local: LocalServer) -> None:
    from e2b import Template

    Template.build(Template().from_debian_image(), "small-mem", memory_mb=128, **local.kw)
    s = Sandbox.create("small-mem", **local.kw)
    try:
        with pytest.raises(CommandExitException) as ei:
            s.commands.run("python3 -c \"b = bytearray(400 * 1024 * 1024); print('survived')\"")
        assert ei.value.exit_code != 0 and "survived" not in ei.value.stdout
        assert s.commands.run("echo still-alive").stdout == "still-alive\n"
    finally:
        s.kill()


def test_kill_leaves_no_process_mount_or_layer(local: LocalServer) -> None:
    s = Sandbox.create(**local.kw)
    s.commands.run("sleep 1000 & sleep 1001 &", background=False)
    sid = s.sandbox_id
    procs = local.cgroup_procs(sid)
    assert len(procs.read_text().split()) >= 3
    # the server's mounts live in its own mount namespace: look through its eyes
    layer = Path(f"/proc/{local.proc.pid}/root{local.host['runDir']}/sbx/{sid}")
    assert layer.is_dir()
    server_mounts = Path(f"/proc/{local.proc.pid}/mounts")
    assert sid in server_mounts.read_text()
    s.kill()
    assert not procs.parent.exists()
    assert not layer.exists()
    assert sid not in server_mounts.read_text()
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "sleep 1000" not in ps and "sleep 1001" not in ps


def test_sandbox_whose_init_dies_is_removed(local: LocalServer) -> None:
    """A crashed sandbox is gone, as a crashed VM is on E2B: not listed, not reported running."""
    s = Sandbox.create(**local.kw)
    procs = local.cgroup_procs(s.sandbox_id)
    init = next(
        int(pid)
        for pid in procs.read_text().split()
        if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"/usr/bin/python3")
    )
    os.kill(init, 9)

    def listed() -> bool:
        return any(x.sandbox_id == s.sandbox_id for x in Sandbox.list(**local.kw).next_items())

    wait_for(lambda: not listed(), 120, "the sandbox whose init died to be unlisted")
    with pytest.raises(SandboxNotFoundException):
        Sandbox.get_info(s.sandbox_id, **local.kw)
    # Unlisted at once; its teardown (the cgroup) follows in the background.
    wait_for(lambda: not procs.parent.exists(), 120, "the dead sandbox's cgroup removed")


def test_bad_key_and_unknown_sandbox(local: LocalServer) -> None:
    bad = {**local.kw, "api_key": "e2b_wrong"}
    with pytest.raises(AuthenticationException):
        Sandbox.create(**bad)
    with pytest.raises(AuthenticationException):
        Sandbox.list(**bad).next_items()
    with pytest.raises(SandboxNotFoundException):
        Sandbox.get_info("inope", **local.kw)
    with pytest.raises(NotFoundException):
        Sandbox.set_timeout("inope", 10, **local.kw)
    with pytest.raises(SandboxException) as ei:  # the SDK maps a create 404 generically
        Sandbox.create("no-such-template", **local.kw)
    assert ei.value.status_code == 404
    r = httpx.get(f"{local.url}/health", headers={"E2b-Sandbox-Id": "inope"})
    assert r.status_code == 502 and "sandbox was not found" in r.json()["message"]


def test_envd_access_token_is_enforced(local: LocalServer) -> None:
    s = Sandbox.create(**local.kw)
    try:
        h = {"E2b-Sandbox-Id": s.sandbox_id, "E2b-Sandbox-Port": "49983"}
        assert httpx.get(f"{local.url}/health", headers=h).status_code == 204
        r = httpx.get(f"{local.url}/files", params={"path": "/etc/hostname"}, headers=h)
        assert r.status_code == 401
        h["X-Access-Token"] = "wrong"
        assert (
            httpx.get(f"{local.url}/files", params={"path": "/etc/hostname"}, headers=h).status_code
            == 401
        )
    finally:
        s.kill()


def test_429_is_retried_by_the_sdk(local: LocalServer) -> None:
    local.admin_faults("429:1:2@/v2/sandboxes")
    try:
        t0 = time.monotonic()
        s = Sandbox.create(retries=3, **local.kw)  # two 429s, then success
        s.kill()
        assert time.monotonic() - t0 < 15
        local.admin_faults("429:1:1@/v2/sandboxes")
        with pytest.raises(RateLimitException):
            Sandbox.create(retries=0, **local.kw)
    finally:
        local.admin_faults(None)


def test_503_and_delay_faults(local: LocalServer) -> None:
    from e2b.exceptions import ServiceBusyException

    local.admin_faults("503:1:1@/sandboxes")
    try:
        with pytest.raises(ServiceBusyException):
            Sandbox.get_info("ianything", retries=0, **local.kw)
        local.admin_faults("delay=0.5:1:1@/v2/sandboxes")
        t0 = time.monotonic()
        Sandbox.list(**local.kw).next_items()
        assert time.monotonic() - t0 >= 0.5
    finally:
        local.admin_faults(None)


async def test_concurrency_limit_answers_429(tmp_path: Path) -> None:
    from .conftest import leftovers, start_server, stop_server

    server = start_server(tmp_path / "st", "--max-sandboxes", "2")
    try:
        a = await AsyncSandbox.create(**server.kw)
        b = await AsyncSandbox.create(**server.kw)
        with pytest.raises(RateLimitException):
            await AsyncSandbox.create(retries=0, **server.kw)
        r = httpx.post(
            f"{server.url}/v2/sandboxes",
            json={"templateID": "base"},
            headers={"X-API-Key": server.api_key},
        )
        assert r.status_code == 429 and r.headers["Retry-After"]
        await a.kill()
        c = await AsyncSandbox.create(**server.kw)
        await b.kill()
        await c.kill()
        await AsyncSandbox.create(**server.kw)  # left running: shutdown must clean it
    finally:
        stop_server(server)
    assert not leftovers(server)


async def test_shutdown_ends_every_sandbox_at_once_and_leaves_nothing(tmp_path: Path) -> None:
    """Running, paused and busy sandboxes: every process ends with the server (each init is
    killed through a pidfd, the rest go with its pid namespace) and nothing is left."""
    from .conftest import CGROUPS, leftovers, start_server, stop_server

    server = start_server(tmp_path / "st")
    try:
        sandboxes = [await AsyncSandbox.create(**server.kw) for _ in range(4)]
        await sandboxes[0].commands.run("sleep 600", background=True)
        await sandboxes[1].beta_pause()
        parent = CGROUPS / "pids" / server.host["cgroupParent"]
        pids = [int(p) for f in parent.glob("*/cgroup.procs") for p in f.read_text().split()]
        assert len(pids) >= 5, pids  # four inits and the sleep
        # pidfds, not PIDs: a PID may belong to another process by the time we look again
        fds = [os.pidfd_open(p) for p in pids]
    finally:
        stop_server(server)
    try:
        assert len(select.select(fds, [], [], 0)[0]) == len(fds)  # readable: it has exited
    finally:
        for fd in fds:
            os.close(fd)
    assert not leftovers(server)


def test_admin_calls_counts_control_plane_calls_by_route(local: LocalServer) -> None:
    calls = f"{local.url}/admin/calls"
    assert httpx.get(calls).status_code == 401
    key = {"X-API-Key": local.api_key}
    before = httpx.get(calls, headers=key).json()
    s = Sandbox.create(**local.kw)
    Sandbox.get_info(s.sandbox_id, **local.kw)
    s.kill()
    after = httpx.get(calls, headers=key).json()
    grew = {k for k in after if after[k] > before.get(k, 0)}
    assert {"POST /v2/sandboxes", "GET /sandboxes/{id}", "DELETE /sandboxes/{id}"} <= grew, after
    assert not any(k.startswith("refused ") for k in grew), "no limits set: nothing refused"


def test_sandboxes_end_with_their_server_even_when_it_is_killed(tmp_path: Path) -> None:
    """No orphans: a server killed with SIGKILL takes its sandboxes with it (their inits
    hold its lifeline), and its next start finds nothing to clean."""
    from .conftest import start_server

    server = start_server(tmp_path / "st")
    boxes = [Sandbox.create(allow_internet_access=i % 2 == 0, **server.kw) for i in range(2)]
    procs = [server.cgroup_procs(b.sandbox_id) for b in boxes]
    inits = [int(p.read_text().split()[0]) for p in procs]
    assert all(os.path.exists(f"/proc/{pid}") for pid in inits)
    assert b"-S\x00-\x00" in Path(f"/proc/{inits[0]}/cmdline").read_bytes()  # source on stdin
    server.proc.kill()
    server.proc.wait()
    deadline = time.monotonic() + 10
    while any(os.path.exists(f"/proc/{pid}") for pid in inits):
        assert time.monotonic() < deadline, "sandboxes outlived their killed server"
        time.sleep(0.05)
    restarted = start_server(tmp_path / "st")
    try:
        assert not Sandbox.list(**restarted.kw).next_items()
    finally:
        from .conftest import leftovers, stop_server

        stop_server(restarted)
    assert not leftovers(restarted)
