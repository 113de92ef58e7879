"""Fixtures for e2b-local: a real `e2b-local serve` subprocess on a free loopback port."""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

API_KEY = "e2b_localtest0123456789"
TEAM_B_KEY = "e2b_localteamb0123456789"
CGROUPS = Path("/sys/fs/cgroup")


@dataclass
class LocalServer:
    url: str
    api_key: str = field(repr=False)
    state_dir: Path
    proc: subprocess.Popen
    teams_file: Path | None = None

    @property
    def kw(self) -> dict[str, object]:
        """SDK connection params (retries=0 keeps error paths fast)."""
        return {"api_url": self.url, "sandbox_url": self.url, "api_key": self.api_key}

    @functools.cached_property
    def host(self) -> dict[str, str]:
        """Where the server keeps its sandboxes: run dir, cgroup parent, nftables, veths."""
        r = httpx.get(f"{self.url}/admin/host", headers={"X-API-Key": self.api_key})
        return r.raise_for_status().json()

    def cgroup_procs(self, sandbox_id: str) -> Path:
        return CGROUPS / "pids" / self.host["cgroupParent"] / sandbox_id / "cgroup.procs"

    def admin_faults(self, spec: str | None) -> None:
        h = {"X-API-Key": self.api_key}
        if spec is None:
            httpx.delete(f"{self.url}/admin/faults", headers=h).raise_for_status()
        else:
            httpx.post(
                f"{self.url}/admin/faults", json={"spec": spec}, headers=h
            ).raise_for_status()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def leftovers(server: LocalServer) -> list[str]:
    """What a stopped server left: its run dir, cgroups, nftables table or veths."""
    host = server.host
    out = [str(p) for p in CGROUPS.glob(f"*/{host['cgroupParent']}")]
    if Path(host["runDir"]).exists():
        out.append(host["runDir"])
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    if host["nftablesTable"] in tables:
        out.append(f"nftables table {host['nftablesTable']}")
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    out += [ln for ln in links.splitlines() if host["vethPrefix"] in ln]
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
    out += [ln for ln in routes.splitlines() if host["sandboxNetwork"] in ln]
    return out


def start_server(state_dir: Path, *extra: str) -> LocalServer:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("E2B_")}
    env["E2B_LOCAL_SECRET_CANARY"] = "must-not-leak"
    env["E2B_LOCAL_API_KEY"] = API_KEY
    proc = subprocess.Popen(
        [
            os.path.join(os.path.dirname(sys.executable), "e2b-local"),
            "serve",
            "--port",
            str(port),
            "--state-dir",
            str(state_dir),
            *extra,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120  # generous: start-up takes 20 s and more under load
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"e2b-local exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                server = LocalServer(url, API_KEY, state_dir, proc)
                assert server.host  # known while it runs, checked after it stops
                return server
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    out = proc.communicate()[0] or ""
    raise RuntimeError(f"e2b-local did not start in 120 s; its output:\n{out[-3000:]}")


def stop_server(server: LocalServer) -> str:
    server.proc.send_signal(signal.SIGTERM)
    try:
        out, _ = server.proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        out, _ = server.proc.communicate()
    return out or ""


@pytest.fixture(scope="session")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    state = tmp_path_factory.mktemp("e2b-local-state")
    teams = tmp_path_factory.mktemp("e2b-local-teams") / "teams"
    teams.write_text(f"# the server's own key is team default\nteam-b={TEAM_B_KEY}\n")
    server = start_server(state, "--max-sandboxes", "40", "--teams-file", str(teams))
    server.teams_file = teams
    yield server
    log = stop_server(server)
    left = leftovers(server)
    assert not left, f"e2b-local left state behind: {left}\n{log[-3000:]}"
    assert "E2B_API_URL" in log and server.api_key not in log  # test_api_auth's key check
