"""A server killed with kill -9 and never restarted: the next server on the host, whatever its
state dir, removes what it left (sweep.py), and nothing of a server still running."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx
from e2b import Sandbox

from .conftest import CGROUPS, LocalServer, leftovers, start_server, stop_server


def _procs(server: LocalServer) -> list[str]:
    tasks = CGROUPS.glob(f"pids/{server.host['cgroupParent']}/*/cgroup.procs")
    return [pid for f in tasks for pid in f.read_text().split()]


def test_next_server_sweeps_a_killed_servers_leftovers(local: LocalServer, tmp_path: Path) -> None:
    running_before = leftovers(local)  # a third stack, running throughout
    dead = start_server(tmp_path / "dead")
    sbx = Sandbox.create(**dead.kw)  # internet on: a veth, an address, cgroups
    assert sbx.commands.run("echo up").stdout == "up\n"
    dead.proc.send_signal(signal.SIGKILL)
    dead.proc.communicate(timeout=60)
    deadline = time.monotonic() + 60
    while _procs(dead):  # the sandbox ends with its server (lifeline)
        assert time.monotonic() < deadline, f"sandbox outlived its server: {_procs(dead)}"
        time.sleep(0.2)
    host = dead.host
    left = leftovers(dead)
    assert f"nftables table {host['nftablesTable']}" in left, left
    assert host["runDir"] in left, left
    assert any(host["sandboxNetwork"] in ln for ln in left), left

    # A host process (not a sandbox user's) in a group that looks like a dead server's: on a
    # hybrid host such groups can hold anything, and the sweep must not kill it.
    bystander_group = CGROUPS / "pids" / "e2b-local-fffff0" / "bystander"
    bystander_group.mkdir(parents=True, exist_ok=True)
    bystander = subprocess.Popen(["sleep", "600"])
    try:
        (bystander_group / "cgroup.procs").write_text(str(bystander.pid))
        nxt = start_server(tmp_path / "next", "--limits", "pro,concurrent_sandboxes=7")
        (CGROUPS / "pids" / "cgroup.procs").write_text(str(bystander.pid))
        try:
            assert bystander.poll() is None, "the sweep killed a host process"
            assert leftovers(dead) == []
            assert leftovers(local) == running_before
            still = Sandbox.create(**local.kw)
            assert still.commands.run("echo ok").stdout == "ok\n"
            still.kill()
            h = {"X-API-Key": nxt.api_key}
            limits = httpx.get(f"{nxt.url}/admin/limits", headers=h).json()["limits"]
            assert limits["creates_per_second"] == 5 and limits["concurrent_sandboxes"] == 7
        finally:
            stop_server(nxt)
    finally:
        bystander.kill()
        bystander.wait()
        bystander_group.rmdir()
        bystander_group.parent.rmdir()
