"""``make dev``: local control plane, e2b-local and the operator, with examples, until Ctrl-C.

Writes ``.dev/env`` so a second shell can ``source .dev/env`` and use kubectl and the e2b
SDK against the same stack.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import localstack
from .controlplane import binaries, processes
from .controlplane.cluster import LocalCluster

TRY = """
Ready. In another shell:
  source .dev/env
  kubectl get e2bt,e2bd                         # templates and deployments, printer columns
  kubectl get e2bd trading -o yaml              # conditions and per-sandbox status
  kubectl scale e2bd/trading --replicas=5       # scale subresource (HPA works the same way)
  kubectl explain e2btemplate.spec.requirements
  kubectl e2b templates list                    # the kubectl plugin
  kubectl e2b exec trading --follow             # a run, its lines as they are printed
  curl -H @.dev/gateway-auth $E2B_GATEWAY_URL/e2b/templates/registry/list   # the REST API
  # $E2B_GATEWAY_URL/docs: the REST API's OpenAPI docs (Bearer $E2B_GATEWAY_TOKEN)
  curl -s $E2B_OPERATOR_METRICS_URL | grep ^e2b_operator_deployment   # Prometheus metrics
  python -c "from e2b import Sandbox; print([s.metadata for s in Sandbox.list().next_items()])"
Logs: .dev/logs/{operator,e2b-local,gateway,kube-apiserver}.log   Ctrl-C here stops everything.
"""


Stoppable = localstack.E2BLocal | localstack.Operator | localstack.Gateway | LocalCluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="e2b-operator-dev", description=__doc__)
    parser.add_argument("--workdir", type=Path, default=Path(".dev"))
    parser.add_argument("--crds", type=Path, default=Path("crds"))
    parser.add_argument("--examples", type=Path, default=Path("manifests/dev"))
    parser.add_argument(
        "--gateway-rbac", type=Path, default=Path("manifests/install/gateway-rbac.yaml")
    )
    parser.add_argument("--wait", type=float, default=300, help="seconds to wait for Ready")
    parser.add_argument("--once", action="store_true", help="set up, wait for Ready, then stop")
    args = parser.parse_args(argv)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    try:
        cluster = LocalCluster(args.workdir, binaries.resolve(log=log), log=log)
    except binaries.BinariesError as exc:
        log(f"error: {exc}")
        return 1
    # Ctrl-C must stop the stack even when started from a shell that ignores SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(0))
    pids = args.workdir / "stack.json"
    crashed_owner = _stop_leftovers(pids, log)
    # A cluster left by a crashed `make dev` is cleaned up by start(); one of `make cluster`
    # is reused and left running.
    reused = None if crashed_owner else cluster.running()
    stack: list[Stoppable] = []
    try:
        started = time.monotonic()
        if reused:
            log(f"reusing the cluster of `make cluster` at {reused.server}")
        state = reused or cluster.start()
        cluster.install_crds(args.crds)
        log(f"cluster ready at {state.server} in {time.monotonic() - started:.1f}s")
        e2b = localstack.start_e2b_local(args.workdir)
        stack.append(e2b)
        log(f"e2b-local serving at {e2b.url}")
        localstack.store_api_key(cluster, e2b)
        operator = localstack.start_operator(args.workdir, cluster, e2b)
        stack.append(operator)
        log(f"operator metrics at {operator.metrics_url}")
        gateway = localstack.start_gateway(args.workdir, cluster)
        stack.append(gateway)
        log(f"REST API gateway serving at {gateway.url}")
        running = {"e2b-local": e2b.pid, "kopf": operator.pid, "e2b-operator-gateway": gateway.pid}
        pids.write_text(json.dumps({"pids": running, "owner": not reused}))
        token = _dev_user_token(cluster, args.gateway_rbac)
        urls = {"E2B_GATEWAY_URL": gateway.url, "E2B_OPERATOR_METRICS_URL": operator.metrics_url}
        _write_env(cluster, e2b, {**urls, "E2B_GATEWAY_TOKEN": token})
        _write_private(args.workdir / "gateway-auth", f"Authorization: Bearer {token}\n")
        cluster.kubectl("apply", "-k", str(args.examples))
        ok = _wait_ready(cluster, args.wait, log)
        log(cluster.kubectl("get", "e2bt,e2bd").stdout)
        if not ok:
            log("not everything became Ready; see `kubectl get e2bt,e2bd -o yaml` and the logs")
        log(TRY)
        while not args.once:
            time.sleep(3600)
        return 0 if ok else 1
    except processes.StartupError as exc:
        log(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        log("stopping")
        stopping = time.monotonic()
        _stop(
            stack,
            None if reused else cluster,
            lambda part: log(f"  {part} stopped at {time.monotonic() - stopping:.1f}s"),
        )
        pids.unlink(missing_ok=True)
        log(f"stopped in {time.monotonic() - stopping:.1f}s")


def _stop(
    stack: list[Stoppable], cluster: LocalCluster | None, done: Callable[[str], None]
) -> None:
    """Stop everything by PID, each part in its own thread: the operator and the gateway
    first (an operator that saw e2b-local go would start making sandboxes again), then
    e2b-local (its sandboxes all at once) and the control plane together."""

    def stop(part: Stoppable) -> None:
        part.stop()
        done(type(part).__name__)

    first = [p for p in stack if not isinstance(p, localstack.E2BLocal)]
    then: list[Stoppable] = [p for p in stack if isinstance(p, localstack.E2BLocal)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(stop, first))
        list(pool.map(stop, [*then, *([cluster] if cluster else [])]))


def _stop_leftovers(pids: Path, log) -> bool:
    """Stop e2b-local and the operator of an earlier run that died without cleaning up;
    True if that run had started the cluster too."""
    try:
        leftovers = json.loads(pids.read_text())
    except (OSError, ValueError):
        return False
    for name, pid in leftovers.get("pids", {}).items():
        if processes.alive(pid, name):
            log(f"stopping {name} (pid {pid}) left by an earlier run")
            processes.stop(pid, name, timeout=30)
    pids.unlink(missing_ok=True)
    return bool(leftovers.get("owner"))


def _wait_ready(cluster: LocalCluster, timeout: float, log) -> bool:
    """Wait until every template and deployment is Ready, printing progress."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        items = json.loads(cluster.kubectl("get", "e2bt,e2bd", "-o", "json").stdout)["items"]
        waiting = [
            f"{o['kind']}/{o['metadata']['name']}"
            for o in items
            if not any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in o.get("status", {}).get("conditions", [])
            )
        ]
        if not waiting:
            return True
        line = f"waiting for {len(waiting)}: {', '.join(waiting[:4])}"
        if line != last:
            log(line)
            last = line
        time.sleep(1)
    return False


DEV_USER = ("default", "dev")
"""The ServiceAccount whose token .dev/env holds for the gateway: e2b-user in its namespace."""


def _dev_user_token(cluster: LocalCluster, gateway_rbac: Path) -> str:
    """A day-long token of the dev user, who may use e2b.dev objects in its namespace."""
    namespace, name = DEV_USER
    cluster.kubectl("apply", "-f", str(gateway_rbac))
    user = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": f"{name}-e2b-user"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "e2b-user",
        },
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
    }
    docs = json.dumps({"apiVersion": "v1", "kind": "List", "items": [user, binding]})
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=docs)
    return cluster.kubectl(
        "-n", namespace, "create", "token", name, "--duration=24h"
    ).stdout.strip()


def _write_env(cluster: LocalCluster, e2b: localstack.E2BLocal, extra: dict[str, str]) -> None:
    lines = [
        f"export KUBECONFIG={cluster.kubeconfig.resolve()}",
        f"export PATH={cluster.workdir.resolve() / 'bin'}:{localstack.BIN}:$PATH",
        *(f"export {k}={v}" for k, v in {**e2b.env(), **extra}.items()),
    ]
    _write_private(cluster.workdir / "env", "\n".join(lines) + "\n")


def _write_private(path: Path, text: str) -> None:
    """Secrets (the E2B key, the dev token): created 0600, never readable by others even for a
    moment."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


if __name__ == "__main__":
    sys.exit(main())
