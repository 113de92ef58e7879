"""Find or build gitops-health, the Go helper that judges objects with Flux's and Argo CD's code.

The source is ``tools/gitops-health/`` (kstatus from sigs.k8s.io/cli-utils and Flux's fork,
Flux's CEL health checks, Argo CD's Lua VM and ``health.GetResourceHealth``). It is built once
per source version (a hash of its go.mod, go.sum and Go files) into
``~/.cache/e2b-operator/gitops-health/<hash>/`` from the Go module proxy, with the Go toolchain
its go.mod names (``GOTOOLCHAIN`` fetches it through the proxy).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .binaries import cache_root, locked

SOURCE = Path(__file__).resolve().parents[3] / "tools" / "gitops-health"
NAME = "gitops-health"


class GitopsHealthError(RuntimeError):
    """The helper cannot be found, built or run; the message says what to do."""


def source_key() -> str:
    """A hash of the helper's source: a new version gets a new cache directory."""
    if not (SOURCE / "go.mod").is_file():
        raise GitopsHealthError(f"no Go module at {SOURCE}; run from a checkout of e2b-operator")
    digest = hashlib.sha256()
    for path in sorted([SOURCE / "go.mod", SOURCE / "go.sum", *SOURCE.glob("*.go")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def cache_dir() -> Path:
    return cache_root() / NAME / source_key()


def resolve(*, build: bool = True, log=print) -> Path:
    """The helper's executable, building it into the cache if needed."""
    exe = cache_dir() / NAME
    if _executable(exe):
        return exe
    with locked(cache_dir()):
        if _executable(exe):
            return exe
        if not build:
            raise GitopsHealthError(f"no {NAME} in {cache_dir()}; run `make gitops-health`")
        _build(cache_dir(), log)
    return exe


def evaluate(
    objects: Sequence[dict[str, Any]],
    *,
    argocd_cm: dict[str, str],
    health_check_exprs: Sequence[dict[str, Any]] = (),
) -> list[dict[str, dict[str, str]]]:
    """Judge each object in one run: per object, ``kstatus``, ``fluxKstatus``, ``fluxCEL`` and
    ``argocd``, each ``{status, message[, error]}``."""
    request = {
        "argocdCM": argocd_cm,
        "healthCheckExprs": list(health_check_exprs),
        "objects": list(objects),
    }
    proc = subprocess.run(
        [str(resolve())], input=json.dumps(request), capture_output=True, text=True, timeout=300
    )
    if proc.returncode != 0:
        raise GitopsHealthError(f"{NAME} failed: {proc.stderr.strip()}")
    results: list[dict[str, dict[str, str]]] = json.loads(proc.stdout)["results"]
    return results


def _build(d: Path, log) -> None:
    go = shutil.which("go")
    if go is None:
        raise GitopsHealthError(f"building {NAME} needs Go (https://go.dev/dl) on PATH")
    toolchain = re.search(r"^toolchain (\S+)$", (SOURCE / "go.mod").read_text(), re.M)
    log(f"building {NAME} from the Go module proxy into {d} (once per version; minutes)")
    d.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".partial-", dir=d.parent))
    env = dict(os.environ)
    if toolchain:
        env["GOTOOLCHAIN"] = toolchain.group(1)
    try:
        proc = subprocess.run(
            [go, "build", "-trimpath", "-o", str(scratch / NAME), "."], cwd=SOURCE, env=env
        )
        if proc.returncode != 0:
            raise GitopsHealthError(
                f"building {NAME} failed (see above); check that `go env GOPROXY` is reachable"
            )
        shutil.rmtree(d, ignore_errors=True)
        scratch.rename(d)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _executable(p: Path) -> bool:
    return p.is_file() and os.access(p, os.X_OK)


def main() -> None:
    """`python -m e2b_operator.controlplane.gitops_health`: build if needed, print the path."""
    try:
        print(resolve(log=lambda m: print(m, file=sys.stderr)))
    except GitopsHealthError as exc:
        sys.exit(str(exc))


if __name__ == "__main__":
    main()
