"""GitOps health of E2BTemplate/E2BDeployment through the real Argo CD and Flux code.

tools/gitops-health (tests/gitops.py) judges the argo-cd style fixtures and objects whose status
comes from the operator's own decision functions with kstatus (both cli-utils), Flux's CEL
evaluator on the example healthCheckExprs, and Argo CD's Lua VM with the shipped checks read
from argocd-cm. Every object is judged in one run of the helper.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2b_operator.api import E2BDeploymentSpec, E2BDeploymentStatus, E2BTemplateStatus
from e2b_operator.api.crdgen import crd
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
from gitops import ARGO, Verdict, flux_kustomization, judge

KINDS = ("E2BTemplate", "E2BDeployment")
STATUS_MODELS = {"E2BTemplate": E2BTemplateStatus, "E2BDeployment": E2BDeploymentStatus}
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
OPERATOR_FINALIZER = "e2b.dev/finalizer"


def _fixture(kind: str, path: str) -> dict[str, Any]:
    return yaml.safe_load((ARGO / "e2b.dev" / kind / path).read_text())


# -- the argo-cd fixtures ---------------------------------------------------------------------

FIXTURES = {
    f"{kind}/{Path(case['inputPath']).stem}": (kind, case)
    for kind in KINDS
    for case in yaml.safe_load((ARGO / "e2b.dev" / kind / "health_test.yaml").read_text())["tests"]
}
# What kstatus (Flux `wait: true`) and the example healthCheckExprs make of each fixture.
FLUX = {
    "fresh": "InProgress",  # status.observedGeneration 0, the CRD's default
    "stale-generation": "InProgress",
    "reconciling": "InProgress",
    "building": "InProgress",
    "ready": "Current",
    "stalled": "Failed",
    "degraded": "InProgress",  # Reconciling=True while the backend is retried
    "suspended": "Current",  # every sandbox paused, as asked: Ready=True (reason Paused)
    "waiting-for-template": "InProgress",
    "sandbox-unhealthy": "Current",  # kstatus has no Degraded; Argo CD shows it
}


# -- status from the decision functions -------------------------------------------------------


def _object(kind: str, generation: int, spec: dict[str, Any], status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "e2b.dev/v1alpha1",
        "kind": kind,
        "metadata": {
            "name": "x",
            "namespace": "default",
            "generation": generation,
            "finalizers": [OPERATOR_FINALIZER],
        },
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
    "deployment waiting for its template": (
        deployment_object([], template=TemplateView("t", ready=False)),
        "Progressing",
        "InProgress",
    ),
    "deployment pausing": (deployment_object(CURRENT, paused=True), "Progressing", "InProgress"),
    "deployment paused": (
        deployment_object([replace(s, state="paused") for s in CURRENT], paused=True),
        "Suspended",
        "Current",
    ),
}


# -- every object, judged once ------------------------------------------------------------------


def _without_status(obj: dict[str, Any]) -> dict[str, Any]:
    bare = copy.deepcopy(obj)
    bare.pop("status", None)
    return bare


def _stale(obj: dict[str, Any]) -> dict[str, Any]:
    """A spec change the operator has not seen yet."""
    stale = copy.deepcopy(obj)
    stale["metadata"]["generation"] += 1
    return stale


def _deleting(obj: dict[str, Any]) -> dict[str, Any]:
    gone = copy.deepcopy(obj)
    gone["metadata"]["deletionTimestamp"] = "2026-11-26T12:00:00Z"
    gone["metadata"]["finalizers"] = [OPERATOR_FINALIZER]  # its cleanup still running
    return gone


def _phase_only_degraded(obj: dict[str, Any]) -> dict[str, Any]:
    """Phase Degraded with Ready=True and no Degraded condition."""
    odd = copy.deepcopy(obj)
    for c in odd["status"]["conditions"]:
        if c["type"] == "Degraded":
            c["status"] = "False"
    return odd


def _as_served(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as the API server serves it before the operator writes: the CRD's structural
    default for status applied."""
    served = _without_status(obj)
    schema = crd(obj["kind"])["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    if "default" in schema["properties"]["status"]:
        served["status"] = copy.deepcopy(schema["properties"]["status"]["default"])
    return served


OBJECTS: dict[str, dict[str, Any]] = {}
for _name, (_kind, _case) in FIXTURES.items():
    OBJECTS[_name] = _fixture(_kind, _case["inputPath"])
for _name, (_obj, _argo, _flux) in DECIDED.items():
    OBJECTS[f"decided/{_name}"] = _obj
for _name, _obj in list(OBJECTS.items()):
    OBJECTS[f"{_name} (stale)"] = _stale(_obj)
    OBJECTS[f"{_name} (deleting)"] = _deleting(_obj)
for _kind in KINDS:
    _fresh = _fixture(_kind, "testdata/fresh.yaml")
    OBJECTS[f"{_kind} without status"] = _without_status(_fresh)
    OBJECTS[f"{_kind} as served"] = _as_served(_fresh)
OBJECTS["phase Degraded"] = _phase_only_degraded(OBJECTS["E2BDeployment/sandbox-unhealthy"])


@pytest.fixture(scope="module")
def verdicts() -> dict[str, Verdict]:
    return dict(zip(OBJECTS, judge(list(OBJECTS.values())), strict=True))


def test_no_client_errs_and_both_kstatus_agree(verdicts: dict[str, Verdict]) -> None:
    assert {n: v.errors for n, v in verdicts.items() if v.errors} == {}
    assert {n: (v.kstatus, v.flux) for n, v in verdicts.items() if v.kstatus != v.flux} == {}


@pytest.mark.parametrize("name", FIXTURES)
def test_argo_fixture(verdicts: dict[str, Verdict], name: str) -> None:
    kind, case = FIXTURES[name]
    v = verdicts[name]
    assert (v.argo, v.argo_message) == (
        case["healthStatus"]["status"],
        case["healthStatus"]["message"],
    )
    expected = FLUX[Path(case["inputPath"]).stem]
    assert (v.kstatus, v.cel) == (expected, expected)
    # The fixture's status is one the operator could write.
    obj = OBJECTS[name]
    wire = STATUS_MODELS[kind].from_wire(obj["status"]).wire()
    assert {key: wire.get(key) for key in obj["status"]} == obj["status"]


@pytest.mark.parametrize("kind", KINDS)
def test_argo_fixtures_cover_every_state(kind: str) -> None:
    stems = {n.split("/", 1)[1] for n, (k, _) in FIXTURES.items() if k == kind}
    states = {"fresh", "stale-generation", "ready", "stalled"}
    if kind == "E2BDeployment":
        states |= {"reconciling", "degraded", "suspended", "waiting-for-template"}
        states |= {"sandbox-unhealthy"}
    else:
        states |= {"building"}
    assert stems == states
    assert stems == {p.stem for p in (ARGO / "e2b.dev" / kind / "testdata").glob("*.yaml")}


@pytest.mark.parametrize("name", DECIDED)
def test_decided_status(verdicts: dict[str, Verdict], name: str) -> None:
    _obj, argo, flux = DECIDED[name]
    v = verdicts[f"decided/{name}"]
    assert (v.argo, v.kstatus, v.cel) == (argo, flux, flux), v.argo_message
    assert v.argo_message


def test_unseen_generation_is_never_judged_from_the_old_status(
    verdicts: dict[str, Verdict],
) -> None:
    stale = {n: v for n, v in verdicts.items() if n.endswith("(stale)")}
    assert {(v.kstatus, v.cel, v.argo) for v in stale.values()} == {
        ("InProgress", "InProgress", "Progressing")
    }
    assert all(v.argo_message.startswith("Waiting for the e2b-operator") for v in stale.values())


def test_deleting_is_terminating_and_pending_deletion(verdicts: dict[str, Verdict]) -> None:
    gone = {n: v for n, v in verdicts.items() if n.endswith("(deleting)")}
    assert {(v.kstatus, v.argo) for v in gone.values()} == {("Terminating", "Progressing")}
    assert {v.argo_message for v in gone.values()} == {
        f"Pending deletion; blocked by finalizers: {OPERATOR_FINALIZER}"
    }


def test_decided_messages_are_actionable(verdicts: dict[str, Verdict]) -> None:
    assert "does not exist" in verdicts["decided/deployment template missing"].argo_message
    assert verdicts["decided/deployment backend error"].argo_message == "E2B failed: 503"


# -- the five findings (gitops-health.md, issue 12), each through the real client code ---------


@pytest.mark.parametrize("kind", KINDS)
def test_fresh_object_is_in_progress_before_the_operator_writes(
    verdicts: dict[str, Verdict], kind: str
) -> None:
    """1: kstatus reads a custom resource without status as Current; the CRD defaults status."""
    v = verdicts[f"{kind} as served"]
    assert (v.kstatus, v.flux, v.cel, v.argo) == (
        "InProgress",
        "InProgress",
        "InProgress",
        "Progressing",
    )
    assert verdicts[f"{kind} without status"].kstatus == "Current"  # why the default exists


def test_paused_deployment_is_current_under_plain_kstatus(verdicts: dict[str, Verdict]) -> None:
    """2: `wait: true` passes once every sandbox is paused (Argo CD: Suspended)."""
    v = verdicts["decided/deployment paused"]
    assert (v.kstatus, v.flux, v.cel, v.argo) == ("Current", "Current", "Current", "Suspended")
    pausing = verdicts["decided/deployment pausing"]
    assert (pausing.kstatus, pausing.argo) == ("InProgress", "Progressing")


@pytest.mark.parametrize("kind", KINDS)
def test_flux_exprs_judge_an_object_without_status(verdicts: dict[str, Verdict], kind: str) -> None:
    """3: the example healthCheckExprs must not fail on a missing status."""
    v = verdicts[f"{kind} without status"]
    assert (v.cel, v.errors) == ("InProgress", ())
    assert v.argo == "Progressing"


def test_waiting_for_a_template_build_is_progress(verdicts: dict[str, Verdict]) -> None:
    """4: a deployment waiting for its template to build is not Degraded."""
    obj = DECIDED["deployment waiting for its template"][0]
    assert {c["type"]: c["status"] for c in obj["status"]["conditions"]}["Degraded"] == "False"
    v = verdicts["decided/deployment waiting for its template"]
    assert (v.kstatus, v.cel, v.argo) == ("InProgress", "InProgress", "Progressing")
    assert "to build" in v.argo_message


def test_degraded_status_is_degraded_in_argo_even_when_ready(
    verdicts: dict[str, Verdict],
) -> None:
    """5: Argo CD's Healthy needs more than Ready=True: phase or condition Degraded wins."""
    obj = OBJECTS["E2BDeployment/sandbox-unhealthy"]
    assert obj["status"]["phase"] == "Degraded"
    ready = {c["type"]: c["status"] for c in obj["status"]["conditions"]}
    assert ready["Ready"] == "True" and ready["Degraded"] == "True"
    assert verdicts["E2BDeployment/sandbox-unhealthy"].argo == "Degraded"
    assert verdicts["phase Degraded"].argo == "Degraded"


# -- installation snippets --------------------------------------------------------------------


def test_flux_example_waits_and_checks_every_kind() -> None:
    spec = flux_kustomization()["spec"]
    assert spec["wait"] is True
    assert {e["kind"] for e in spec["healthCheckExprs"]} == set(KINDS)
