"""``make dev``: the local control plane and the examples, running until Ctrl-C.

Writes ``.dev/env`` so a second shell can ``source .dev/env`` and use kubectl against it.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from .controlplane import binaries, processes
from .controlplane.cluster import LocalCluster

TRY = """
Try, in another shell:
  source .dev/env
  kubectl get e2bt,e2bd              # templates and deployments, with their printer columns
  kubectl explain e2btemplate.spec.requirements
  kubectl scale e2bd/{deployment} --replicas=3
Ctrl-C here stops everything.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="e2b-operator-dev", description=__doc__)
    parser.add_argument("--workdir", type=Path, default=Path(".dev"))
    parser.add_argument("--crds", type=Path, default=Path("crds"))
    parser.add_argument("--examples", type=Path, default=Path("manifests/examples"))
    parser.add_argument("--once", action="store_true", help="set up, then stop (for tests)")
    args = parser.parse_args(argv)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    try:
        cluster = LocalCluster(args.workdir, binaries.resolve(log=log), log=log)
    except binaries.BinariesError as exc:
        log(f"error: {exc}")
        return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    reused = cluster.running()
    try:
        started = time.monotonic()
        if reused:
            log(f"reusing the cluster of `make cluster` at {reused.server}")
        state = reused or cluster.start()
        cluster.install_crds(args.crds)
        log(f"cluster ready at {state.server} in {time.monotonic() - started:.1f}s")
        _write_env(cluster)
        cluster.kubectl("apply", "-k", str(args.examples))
        log(cluster.kubectl("get", "e2bt,e2bd", "-A").stdout)
        log(TRY.format(deployment=_first_deployment(cluster)))
        while not args.once:
            time.sleep(3600)
    except processes.StartupError as exc:
        log(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        if not reused:
            log("stopping")
            cluster.stop()
    return 0


def _write_env(cluster: LocalCluster) -> None:
    env = cluster.workdir / "env"
    env.write_text(
        f"export KUBECONFIG={cluster.kubeconfig}\nexport PATH={cluster.workdir / 'bin'}:$PATH\n"
    )


def _first_deployment(cluster: LocalCluster) -> str:
    names = cluster.kubectl("get", "e2bd", "-o", "name").stdout.split()
    return names[0].split("/", 1)[1] if names else "NAME"


if __name__ == "__main__":
    sys.exit(main())
