"""The helm binary the chart tests run: built once per version from the Go module proxy.

``python -m e2b_operator.controlplane.helm`` (``make helm-binary``) prints its path. Order:
``$E2B_OPERATOR_HELM``; the cache ``~/.cache/e2b-operator/helm/<version>/`` (locked while it
is built, checked against its marker); ``go install helm.sh/helm/v3/cmd/helm@<version>``
into a scratch directory moved into place when complete.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .binaries import BinariesError, cache_root, locked

HELM_VERSION = "v3.22.0"
MODULE = "helm.sh/helm/v3"
MARKER = "complete.json"


def cache_dir() -> Path:
    return cache_root() / "helm" / HELM_VERSION


def resolve(*, build: bool = True, log=print) -> Path:
    """Path of a helm executable, building it into the cache if needed."""
    given = os.environ.get("E2B_OPERATOR_HELM")
    if given:
        if not (Path(given).is_file() and os.access(given, os.X_OK)):
            raise BinariesError(f"E2B_OPERATOR_HELM={given} is not an executable; fix or unset it")
        return Path(given)
    d = cache_dir()
    with locked(d):
        found = _from_cache(d, log)
        if found:
            return found
        if not build:
            raise BinariesError(f"no helm in {d}; run `make helm-binary`")
        _build(d, log)
        found = _from_cache(d, log)
        if not found:
            raise BinariesError(f"the helm build finished but {d} is incomplete")
        return found


def _from_cache(d: Path, log) -> Path | None:
    exe, marker = d / "helm", d / MARKER
    if not marker.exists():
        return None
    try:
        intact = exe.stat().st_size == json.loads(marker.read_text())["size"]
    except (OSError, ValueError, KeyError):
        intact = False
    if not (intact and os.access(exe, os.X_OK)):
        log(f"cache {d} is corrupt (helm is missing or truncated); rebuilding it")
        shutil.rmtree(d, ignore_errors=True)
        return None
    return exe


def _build(d: Path, log) -> None:
    if not shutil.which("go"):
        raise BinariesError(
            "helm is built from the Go module proxy and Go is not installed: install Go"
            " (https://go.dev/dl) or set E2B_OPERATOR_HELM to a helm 3 executable"
        )
    log(f"building helm {HELM_VERSION} from the Go module proxy into {d} (at low priority)")
    log("(once per version; a few minutes on 2 cores)")
    d.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".partial-", dir=d.parent))
    try:
        ldflags = f"-s -w -X {MODULE}/internal/version.version={HELM_VERSION}"
        flags = f"{os.environ.get('GOFLAGS', '')} -mod=mod".strip()
        env = {**os.environ, "GOBIN": str(scratch), "CGO_ENABLED": "0", "GOFLAGS": flags}
        target = f"{MODULE}/cmd/helm@{HELM_VERSION}"
        proc = subprocess.run(
            ["nice", "-n", "19", "go", "install", "-trimpath", "-ldflags", ldflags, target],
            env=env,
            cwd=scratch,
        )
        if proc.returncode != 0:
            raise BinariesError(
                "building helm from the Go module proxy failed (see above); check that"
                " `go env GOPROXY` is reachable, or set E2B_OPERATOR_HELM to a helm executable"
            )
        (scratch / MARKER).write_text(json.dumps({"size": (scratch / "helm").stat().st_size}))
        scratch.chmod(0o755)
        shutil.rmtree(d, ignore_errors=True)
        scratch.rename(d)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> int:
    log = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    try:
        print(resolve(log=log))
    except BinariesError as exc:
        log(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
