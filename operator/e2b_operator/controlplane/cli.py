"""``e2b-operator-cluster up|down|status|binaries``: the local control plane of ``make cluster``.

``binaries`` only finds, builds or downloads kube-apiserver, kube-controller-manager, kubectl
and etcd into the cache.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import binaries, processes
from .cluster import LocalCluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="e2b-operator-cluster", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "binaries"])
    parser.add_argument("--workdir", type=Path, default=Path(".dev"), help="state dir (.dev)")
    parser.add_argument("--port", type=int, default=0, help="apiserver port (0: a free one)")
    parser.add_argument("--crds", type=Path, default=Path("crds"), help="CRD dir to install")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except (binaries.BinariesError, processes.StartupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    log = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    if args.command == "down":
        cluster = LocalCluster(args.workdir, _cached_or_none(), log=log)
        cluster.stop()
        log(f"stopped the local cluster in {args.workdir}")
        return 0
    found = binaries.resolve(build=args.command in ("up", "binaries"), log=log)
    if args.command == "binaries":
        log(f"Kubernetes binaries: {found.source}")
        return 0
    cluster = LocalCluster(args.workdir, found, port=args.port, log=log)
    if args.command == "status":
        state = cluster.running()
        print(f"running at {state.server}" if state else "not running")
        return 0 if state else 1
    started = time.monotonic()
    state = cluster.running()
    if state:
        log(f"already running at {state.server} (`make cluster-down` stops it)")
    else:
        log(f"starting etcd, kube-apiserver and kube-controller-manager ({found.source})")
        state = cluster.start()
    cluster.install_crds(args.crds)
    log(f"cluster ready at {state.server} in {time.monotonic() - started:.1f}s")
    print(f"export KUBECONFIG={cluster.kubeconfig}")
    print(f"export PATH={cluster.workdir / 'bin'}:$PATH")
    return 0


def _cached_or_none() -> binaries.KubeBinaries:
    """Stopping needs no binaries; this placeholder satisfies the type without resolving."""
    missing = Path("/nonexistent")
    return binaries.KubeBinaries(missing, missing, None, missing, "none")


if __name__ == "__main__":
    sys.exit(main())
