"""The local stack around a cluster: e2b-local and the operator as processes, stopped by PID.

Used by ``make dev``, the integration tests and the benchmarks, so all three run the same
real parts the same way.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .controlplane import processes
from .controlplane.cluster import LocalCluster

BIN = Path(sys.executable).parent


@dataclass
class E2BLocal:
    """A running ``e2b-local serve``."""

    url: str
    api_key: str = field(repr=False)
    pid: int
    log: Path
    teams_file: Path | None = None
    """Its --teams-file: more API keys, each a separate E2B team (see ``add_team``)."""

    def env(self) -> dict[str, str]:
        """What the SDK (and the operator) need to reach it."""
        return {"E2B_API_URL": self.url, "E2B_SANDBOX_URL": self.url, "E2B_API_KEY": self.api_key}

    def add_team(self, team: str) -> str:
        """A new API key of a new team (``team``: lowercase letters, digits and '-'), added
        to the running server's teams file; returned once the server accepts it."""
        assert self.teams_file is not None
        key = f"e2b_{secrets.token_hex(16)}"
        with self.teams_file.open("a") as f:
            f.write(f"{team}={key}\n")
        request = urllib.request.Request(f"{self.url}/v2/sandboxes", headers={"X-API-Key": key})
        processes.wait_until(
            lambda: _http_ok(request),
            pid=self.pid,
            name="e2b-local",
            log_path=self.log,
            timeout=30,
        )
        return key

    def stop(self) -> None:
        processes.stop(self.pid, "e2b-local", timeout=30)


@dataclass
class Operator:
    """A running ``kopf run`` of this operator."""

    pid: int
    log: Path
    env: dict[str, str] = field(repr=False, default_factory=dict)

    @property
    def metrics_url(self) -> str:
        """Its Prometheus endpoint."""
        address = self.env["E2B_OPERATOR_METRICS_ADDRESS"]
        return f"http://{address}:{self.env['E2B_OPERATOR_METRICS_PORT']}/metrics"

    def stop(self) -> None:
        processes.stop(self.pid, "kopf", timeout=30)


def start_e2b_local(
    workdir: Path, *extra: str, api_key: str | None = None, port: int | None = None
) -> E2BLocal:
    """Start e2b-local on a free loopback port (or ``port``, to restart one) with its state
    under ``workdir``; the key goes in its environment, never on its command line."""
    port = port or processes.free_port()
    key = api_key or f"e2b_{secrets.token_hex(16)}"
    log = workdir / "logs" / "e2b-local.log"
    teams = workdir / "e2b-local-teams"
    workdir.mkdir(parents=True, exist_ok=True)
    teams.touch(mode=0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("E2B_")}
    env["E2B_LOCAL_API_KEY"] = key
    pid = processes.spawn(
        [
            str(BIN / "e2b-local"),
            "serve",
            "--port",
            str(port),
            "--state-dir",
            str(workdir / "e2b-local"),
            "--share-builds",  # identical templates (tests, dev, bench) build once per host
            "--teams-file",
            str(teams),
            *extra,
        ],
        log,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    processes.wait_until(
        lambda: _http_ok(f"{url}/health"), pid=pid, name="e2b-local", log_path=log, timeout=60
    )
    return E2BLocal(url, key, pid, log, teams)


API_KEY_SECRET = ("e2b-system", "e2b-api-key")
"""Where the operator's E2B API key is kept, as in the install manifests."""


def store_api_key(cluster: LocalCluster, e2b: E2BLocal) -> None:
    """Put e2b-local's API key into the Secret the operator reads it from."""
    namespace, name = API_KEY_SECRET
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": {"apiKey": e2b.api_key},
    }
    namespace_doc = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    docs = json.dumps({"apiVersion": "v1", "kind": "List", "items": [namespace_doc, secret]})
    cluster.kubectl("apply", "-f", "-", input=docs)


def start_operator(
    workdir: Path, cluster: LocalCluster, e2b: E2BLocal, extra_env: dict[str, str] | None = None
) -> Operator:
    """Run the operator as ``kopf run`` would in a pod: E2B endpoint from the environment,
    API key from the Secret (see ``store_api_key``), /metrics on a free loopback port."""
    log = workdir / "logs" / "operator.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("E2B_")}
    env.update({"E2B_API_URL": e2b.url, "E2B_SANDBOX_URL": e2b.url})
    env["E2B_API_KEY_SECRET"] = "/".join(API_KEY_SECRET)
    # e2b-local enforces no rate limits unless told to: pace as it does (tests and benchmarks
    # that turn its limits on pass the matching preset).
    env["E2B_OPERATOR_RATE_PRESET"] = "unlimited"
    env["E2B_OPERATOR_METRICS_ADDRESS"] = "127.0.0.1"
    env["E2B_OPERATOR_METRICS_PORT"] = str(processes.free_port())
    env.update(extra_env or {})
    env["KUBECONFIG"] = str(cluster.kubeconfig)
    env.setdefault("MALLOC_ARENA_MAX", "2")  # as manifests/install/deployment.yaml sets it
    pid = processes.spawn(
        [
            str(BIN / "kopf"),
            "run",
            "--all-namespaces",
            "--standalone",
            "--log-format=full",
            "-m",
            "e2b_operator.handlers.main",
        ],
        log,
        env=env,
    )
    return Operator(pid, log, env)


@dataclass
class Gateway:
    """A running ``e2b-operator-gateway``."""

    url: str
    pid: int
    log: Path

    def stop(self) -> None:
        processes.stop(self.pid, "e2b-operator-gateway", timeout=30)


def start_gateway(workdir: Path, cluster: LocalCluster, namespace: str = "default") -> Gateway:
    """Serve the REST API on a free loopback port; it reviews callers' tokens with the
    cluster's admin kubeconfig, as it would with its ServiceAccount in a pod."""
    port = processes.free_port()
    log = workdir / "logs" / "gateway.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("E2B_")}
    env["KUBECONFIG"] = str(cluster.kubeconfig)
    cmd = [str(BIN / "e2b-operator-gateway"), "--host", "127.0.0.1", "--port", str(port)]
    pid = processes.spawn([*cmd, "--namespace", namespace], log, env=env)
    url = f"http://127.0.0.1:{port}"
    processes.wait_until(
        lambda: _http_ok(f"{url}/healthz"),
        pid=pid,
        name="e2b-operator-gateway",
        log_path=log,
        timeout=60,
    )
    return Gateway(url, pid, log)


def _http_ok(url: str | urllib.request.Request) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status < 300
    except OSError:
        return False
