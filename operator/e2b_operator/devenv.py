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
  python -c "from e2b import Sandbox; print([s.metadata for s in Sandbox.list().next_items()])"
Logs: .dev/logs/{operator,e2b-local,kube-apiserver}.log   Ctrl-C here stops everything.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="e2b-operator-dev", description=__doc__)
    parser.add_argument("--workdir", type=Path, default=Path(".dev"))
    parser.add_argument("--crds", type=Path, default=Path("crds"))
    parser.add_argument("--examples", type=Path, default=Path("manifests/dev"))
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
    stack: list[localstack.E2BLocal | localstack.Operator] = []
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
        stack.append(localstack.start_operator(args.workdir, cluster, e2b))
        pids.write_text(
            json.dumps({"pids": {"e2b-local": e2b.pid, "kopf": stack[-1].pid}, "owner": not reused})
        )
        _write_env(cluster, e2b)
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
        for proc in reversed(stack):
            proc.stop()
        pids.unlink(missing_ok=True)
        if not reused:
            cluster.stop()


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


def _write_env(cluster: LocalCluster, e2b: localstack.E2BLocal) -> None:
    lines = [
        f"export KUBECONFIG={cluster.kubeconfig.resolve()}",
        f"export PATH={cluster.workdir.resolve() / 'bin'}:{localstack.BIN}:$PATH",
        *(f"export {k}={v}" for k, v in e2b.env().items()),
    ]
    # The E2B key is only here: created 0600, never world-readable even for a moment.
    fd = os.open(cluster.workdir / "env", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
