"""GitOps health of E2BTemplate/E2BDeployment: the Argo CD Lua checks and Flux's kstatus.

The Lua checks run in a real Lua 5.1 (gopher-lua, Argo CD's interpreter, implements 5.1) over
their argo-cd style fixtures, and over objects whose status comes from the operator's own
decision functions, so a change to the conditions cannot silently break GitOps health.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lupa.lua51 as lupa
import pytest
import yaml

from e2b_operator.api import E2BDeploymentSpec, E2BDeploymentStatus, E2BTemplateStatus
from e2b_operator.reconcile.deployment import Observation, TemplateView, decide
from e2b_operator.reconcile.health import Health
from e2b_operator.reconcile.observed import (
    META_INDEX,
    META_TEMPLATE_HASH,
    BuildProgress,
    ObservedSandbox,
    Problem,
)
from e2b_operator.reconcile.template import TemplateObservation, decide_template

ROOT = Path(__file__).resolve().parents[2]
GITOPS = ROOT / "manifests" / "gitops"
ARGO = GITOPS / "argocd" / "e2b.dev"
KINDS = ("E2BTemplate", "E2BDeployment")
STATUS_MODELS = {"E2BTemplate": E2BTemplateStatus, "E2BDeployment": E2BDeploymentStatus}
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def argo_health(obj: dict[str, Any]) -> tuple[str, str]:
    """Run the kind's health.lua as Argo CD does: `obj` global in, {status, message} out."""
    lua = lupa.LuaRuntime()
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute((ARGO / obj["kind"] / "health.lua").read_text())
    return result["status"], result["message"]


def kstatus(obj: dict[str, Any]) -> str:
    """cli-utils kstatus for a custom resource (gitops-health.md section 2), first match wins."""
    if obj["metadata"].get("deletionTimestamp"):
        return "Terminating"
    status = obj.get("status") or {}
    if "observedGeneration" in status and status["observedGeneration"] != obj["metadata"].get(
        "generation"
    ):
        return "InProgress"
    conditions = {c["type"]: c["status"] for c in status.get("conditions", [])}
    if conditions.get("Reconciling") == "True":
        return "InProgress"
    if conditions.get("Stalled") == "True":
        return "Failed"
    if "Ready" in conditions:
        return "Current" if conditions["Ready"] == "True" else "InProgress"
    return "Current"


# -- the argo-cd fixtures ---------------------------------------------------------------------

FIXTURES = [
    (kind, case)
    for kind in KINDS
    for case in yaml.safe_load((ARGO / kind / "health_test.yaml").read_text())["tests"]
]
# What kstatus (`wait: true` in Flux) makes of the same fixtures.
KSTATUS = {
    # kstatus reads "no status" as Current, hence conditions from the operator's first reconcile.
    "fresh": "Current",
    "stale-generation": "InProgress",
    "reconciling": "InProgress",
    "building": "InProgress",
    "ready": "Current",
    "stalled": "Failed",
    "degraded": "InProgress",  # Reconciling=True while the backend is retried
    "suspended": "InProgress",  # paused is not Ready
}


def _fixture(kind: str, path: str) -> dict[str, Any]:
    return yaml.safe_load((ARGO / kind / path).read_text())


@pytest.mark.parametrize(("kind", "case"), FIXTURES, ids=lambda v: v if isinstance(v, str) else "")
def test_argo_fixture(kind: str, case: dict[str, Any]) -> None:
    obj = _fixture(kind, case["inputPath"])
    assert obj["kind"] == kind
    assert argo_health(obj) == (case["healthStatus"]["status"], case["healthStatus"]["message"])
    assert kstatus(obj) == KSTATUS[Path(case["inputPath"]).stem]
    # The fixture's status is one the operator could write.
    if "status" in obj:
        wire = STATUS_MODELS[kind].from_wire(obj["status"]).wire()
        assert {key: wire.get(key) for key in obj["status"]} == obj["status"]


@pytest.mark.parametrize("kind", KINDS)
def test_argo_fixtures_cover_every_state(kind: str) -> None:
    stems = {Path(case["inputPath"]).stem for k, case in FIXTURES if k == kind}
    states = {"fresh", "stale-generation", "ready", "stalled"}
    if kind == "E2BDeployment":
        states |= {"reconciling", "degraded", "suspended"}
    else:
        states |= {"building"}
    assert stems == states
    assert stems == {p.stem for p in (ARGO / kind / "testdata").glob("*.yaml")}


def test_kstatus_terminating_wins() -> None:
    obj = _fixture("E2BDeployment", "testdata/ready.yaml")
    obj["metadata"]["deletionTimestamp"] = "2026-11-26T12:00:00Z"
    assert kstatus(obj) == "Terminating"


# -- status from the decision functions -------------------------------------------------------


def _object(kind: str, generation: int, spec: dict[str, Any], status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "e2b.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "x", "namespace": "default", "generation": generation},
        "spec": spec,
        "status": status.wire(),
    }


def template_object(build: str | None, *, first: bool = False, **extra: Any) -> dict[str, Any]:
    """An E2BTemplate after one decision; `build` is the polled E2B build status."""
    previous = None if first else E2BTemplateStatus(spec_hash="h", build_id="b", template_id="t")
    progress = BuildProgress("t", "b", build, logs=("boom",)) if build else None
    obs = TemplateObservation(2, "h", previous, progress, NOW, **extra)
    return _object("E2BTemplate", 2, {"type": "pythonBase"}, decide_template(obs).status)


def _sandbox(index: int, template_hash: str = "h", state: str = "running") -> ObservedSandbox:
    meta = {META_INDEX: str(index), META_TEMPLATE_HASH: template_hash}
    return ObservedSandbox(f"sb{index}-{template_hash}", state, meta, started_at=NOW)  # type: ignore[arg-type]


BUILT = TemplateView("t", ready=True, template_id="t")


def deployment_object(
    sandboxes: list[ObservedSandbox],
    *,
    paused: bool = False,
    template: TemplateView | None = BUILT,
    unhealthy: frozenset[str] = frozenset(),
    problem: Problem | None = None,
) -> dict[str, Any]:
    """An E2BDeployment of two replicas after one decision."""
    spec = E2BDeploymentSpec.from_wire({"templateRef": {"name": "t"}, "replicas": 2})
    spec = spec.model_copy(update={"paused": paused})
    health = {
        s.sandbox_id: Health(
            healthy=s.sandbox_id not in unhealthy, failures=0, since=NOW, passed=True
        )
        for s in sandboxes
    }
    obs = Observation(
        generation=3,
        name="x",
        spec=spec,
        template=template,
        wanted_hashes={0: "h", 1: "h"},
        sandboxes=tuple(sandboxes),
        health=health,
        previous=None,
        now=NOW,
        problem=problem,
    )
    return _object("E2BDeployment", 3, spec.wire(), decide(obs).status)


CURRENT = [_sandbox(0), _sandbox(1)]
BACKEND_DOWN = Problem("BackendUnavailable", "E2B failed: 503", stalled=False)

DECIDED = {
    "template first reconcile": (template_object(None, first=True), "Progressing", "InProgress"),
    "template building": (template_object("building"), "Progressing", "InProgress"),
    "template ready": (template_object("ready"), "Healthy", "Current"),
    "template build failed": (template_object("error"), "Degraded", "Failed"),
    "template invalid spec": (
        template_object(None, spec_error="no runtime"),
        "Degraded",
        "Failed",
    ),
    "template backend retry": (
        template_object("building", problem=BACKEND_DOWN),
        "Progressing",
        "InProgress",
    ),
    "deployment first reconcile": (deployment_object([]), "Progressing", "InProgress"),
    "deployment converged": (deployment_object(CURRENT), "Healthy", "Current"),
    "deployment rolling": (
        deployment_object([_sandbox(0, "old"), _sandbox(1)]),
        "Progressing",
        "InProgress",
    ),
    "deployment template missing": (
        deployment_object(CURRENT, template=None),
        "Degraded",
        "Failed",
    ),
    "deployment template failed": (
        deployment_object([], template=TemplateView("t", ready=False, failed=True)),
        "Degraded",
        "Failed",
    ),
    "deployment backend error": (
        deployment_object(CURRENT, problem=BACKEND_DOWN),
        "Degraded",
        "InProgress",
    ),
    "deployment sandbox unhealthy": (
        deployment_object(CURRENT, unhealthy=frozenset({CURRENT[0].sandbox_id})),
        "Degraded",
        "InProgress",
    ),
    "deployment pausing": (deployment_object(CURRENT, paused=True), "Suspended", "InProgress"),
    "deployment paused": (
        deployment_object([replace(s, state="paused") for s in CURRENT], paused=True),
        "Suspended",
        "InProgress",
    ),
}


@pytest.mark.parametrize(("obj", "argo", "flux"), DECIDED.values(), ids=DECIDED.keys())
def test_decided_status(obj: dict[str, Any], argo: str, flux: str) -> None:
    status, message = argo_health(obj)
    assert (status, kstatus(obj)) == (argo, flux), message
    assert message
    # A spec change the operator has not seen yet is never reported from the old status.
    stale = copy.deepcopy(obj)
    stale["metadata"]["generation"] += 1
    assert argo_health(stale)[0] == "Progressing" and kstatus(stale) == "InProgress"


def test_decided_messages_are_actionable() -> None:
    obj = DECIDED["deployment template missing"][0]
    assert "does not exist" in argo_health(obj)[1]
    assert argo_health(DECIDED["deployment backend error"][0])[1] == "E2B failed: 503"


# -- installation snippets --------------------------------------------------------------------


def test_argocd_cm_keys_point_at_the_checks() -> None:
    kustomization = yaml.safe_load((GITOPS / "argocd" / "kustomization.yaml").read_text())
    (generator,) = kustomization["configMapGenerator"]
    assert generator["name"] == "argocd-cm"
    files = dict(entry.split("=", 1) for entry in generator["files"])
    assert files == {
        f"resource.customizations.health.e2b.dev_{kind}": f"e2b.dev/{kind}/health.lua"
        for kind in KINDS
    }


def test_flux_example_checks_every_kind() -> None:
    spec = yaml.safe_load((GITOPS / "flux" / "e2b-apps.yaml").read_text())["spec"]
    assert spec["wait"] is True
    assert {e["kind"] for e in spec["healthCheckExprs"]} == set(KINDS)
    for expr in spec["healthCheckExprs"]:
        assert {"inProgress", "failed", "current"} <= set(expr)
