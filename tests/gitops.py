"""GitOps health through the real clients: the shipped Argo CD checks and Flux examples, judged
by tools/gitops-health (kstatus as Flux `wait: true` runs it, Flux's CEL evaluator, Argo CD's
Lua VM behind `health.GetResourceHealth`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from e2b_operator.controlplane import gitops_health

GITOPS = Path(__file__).resolve().parents[1] / "manifests" / "gitops"
ARGO = GITOPS / "argocd"


@dataclass(frozen=True)
class Verdict:
    """What each client makes of one object."""

    kstatus: str
    """sigs.k8s.io/cli-utils kstatus."""
    flux: str
    """Flux's kstatus fork: `wait: true` without healthCheckExprs."""
    cel: str
    """Flux with the example healthCheckExprs."""
    argo: str
    argo_message: str
    errors: tuple[str, ...]
    """Any client's error (a Lua or CEL failure): none expected."""


def argocd_cm() -> dict[str, str]:
    """The argocd-cm data manifests/gitops/argocd/ generates (key -> health.lua text)."""
    kustomization = yaml.safe_load((ARGO / "kustomization.yaml").read_text())
    (generator,) = kustomization["configMapGenerator"]
    assert generator["name"] == "argocd-cm"
    pairs = (entry.split("=", 1) for entry in generator["files"])
    return {key: (ARGO / path).read_text() for key, path in pairs}


def flux_kustomization() -> dict[str, Any]:
    return yaml.safe_load((GITOPS / "flux" / "e2b-apps.yaml").read_text())


def judge(objects: Sequence[dict[str, Any]]) -> list[Verdict]:
    """Every object judged by every client, in one run of the helper."""
    exprs = flux_kustomization()["spec"]["healthCheckExprs"]
    results = gitops_health.evaluate(objects, argocd_cm=argocd_cm(), health_check_exprs=exprs)
    return [
        Verdict(
            kstatus=r["kstatus"]["status"],
            flux=r["fluxKstatus"]["status"],
            cel=r["fluxCEL"]["status"],
            argo=r["argocd"]["status"],
            argo_message=r["argocd"]["message"],
            errors=tuple(v["error"] for v in r.values() if v.get("error")),
        )
        for r in results
    ]
