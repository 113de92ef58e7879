"""The pure E2BTemplate decision and the spec -> build recipe mapping."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from e2b_operator.api import E2BTemplateSpec, E2BTemplateStatus
from e2b_operator.reconcile.capabilities import unhonoured
from e2b_operator.reconcile.observed import BuildProgress, Problem
from e2b_operator.reconcile.recipe import RecipeError, recipe, spec_hash
from e2b_operator.reconcile.template import TemplateObservation, decide_template

NOW = datetime(2026, 11, 26, tzinfo=UTC)
LATER = datetime(2026, 11, 27, tzinfo=UTC)
SPEC = E2BTemplateSpec.from_wire(
    {
        "type": "pythonBase",
        "requirements": {
            "runtime": "python3.12",
            "pythonPackages": ["six"],
            "systemPackages": ["curl"],
            "env": [{"name": "MODE", "value": "x"}],
            "cpuCores": 1,
            "memoryMB": 512,
        },
        "files": {"mainScript": "print(1)", "modules": {"lib/util.py": "X = 1"}},
        "hooks": {"preInstall": "echo pre", "preStart": "echo start", "healthCheck": "true"},
    }
)


def test_recipe_maps_every_part_in_order() -> None:
    r = recipe(SPEC)
    assert r.base == ("python", "3.12")
    assert (r.cpu_count, r.memory_mb) == (1, 512)
    kinds = [s.kind for s in r.steps]
    assert kinds == ["run", "workdir", "env", "run", "apt", "pip", "files"]
    files = next(s for s in r.steps if s.kind == "files").files
    config = json.loads(files.pop("/app/template.json"))
    assert files == {"/app/main.py": "print(1)", "/app/lib/util.py": "X = 1"}
    assert config["template_type"] == "pythonBase" and "files" not in config
    assert config["requirements"]["python_packages"] == ["six"]
    assert config["hooks"]["pre_start"] == "echo start"
    env = next(s for s in r.steps if s.kind == "env").env
    assert env == {
        "E2B_TEMPLATE_CONFIG": "/app/template.json",
        "E2B_INSTANCE_CONFIG": "/app/instance.json",
        "MODE": "x",
    }
    assert (r.start_cmd, r.ready_cmd) == ("echo start", "true")


def test_recipe_refuses_paths_leaving_app() -> None:
    bad = SPEC.model_copy(
        update={"files": SPEC.files.model_copy(update={"modules": {"../etc/x": "y"}})}
    )
    with pytest.raises(RecipeError, match=r"spec\.files"):
        recipe(bad)


def observe(**kw) -> TemplateObservation:
    args = {"generation": 2, "spec_hash": spec_hash(SPEC), "previous": None, "build": None}
    args.update(kw)
    return TemplateObservation(**{"now": NOW, **args})


def test_new_spec_starts_a_build() -> None:
    plan = decide_template(observe())
    assert plan.action == "build"
    assert plan.status.phase == "Building"
    # a changed spec rebuilds a template already built from the old one
    built = E2BTemplateStatus(phase="Ready", spec_hash="old", build_id="b1", template_id="t1")
    plan = decide_template(observe(previous=built))
    assert (plan.action, plan.status.phase) == ("build", "Building")


def test_build_outcomes() -> None:
    prev = E2BTemplateStatus(spec_hash=spec_hash(SPEC), build_id="b1", template_id="t1")
    building = decide_template(observe(previous=prev, build=BuildProgress("t1", "b1", "building")))
    assert (building.action, building.status.phase) == ("poll", "Building")
    done = BuildProgress("t1", "b1", "ready", ("step 1", "step 2"))
    ready = decide_template(observe(previous=prev, build=done))
    assert (ready.action, ready.status.phase) == ("none", "Ready")
    assert ready.status.built_at == NOW and not ready.status.build_log_tail  # kept on failure
    later = decide_template(observe(previous=ready.status, build=done, now=LATER))
    assert later.status.built_at == NOW  # when it was built, not when last looked at
    failed = decide_template(
        observe(previous=prev, build=BuildProgress("t1", "b1", "error", ("l1", "l2"), "boom"))
    )
    stalled = next(c for c in failed.status.conditions if c.type == "Stalled")
    assert (stalled.status, stalled.reason) == ("True", "BuildFailed")
    assert failed.status.build_log_tail == ["l1", "l2"]


def test_transient_backend_problem_keeps_polling() -> None:
    prev = E2BTemplateStatus(spec_hash=spec_hash(SPEC), build_id="b1", template_id="t1")
    plan = decide_template(observe(previous=prev, problem=Problem("BackendTimeout", "slow", False)))
    assert plan.action == "poll"
    reconciling = next(c for c in plan.status.conditions if c.type == "Reconciling")
    assert (reconciling.status, reconciling.reason) == ("True", "BackendTimeout")


def test_spec_error_fails_without_building() -> None:
    plan = decide_template(observe(spec_error="spec.files: path leaves /app"))
    assert plan.action == "none" and plan.status.phase == "Failed"
    assert plan.status.build_id is None


def test_fields_the_backend_cannot_honour_are_a_condition_while_the_build_goes_on() -> None:
    req = SPEC.requirements.model_copy(update={"gpu_enabled": True, "storage_gb": 50})
    ignored = unhonoured(SPEC.model_copy(update={"requirements": req}))
    fields = [m.split(":")[0] for m in ignored]
    assert fields == ["requirements.gpuEnabled", "requirements.storageGB"]
    assert unhonoured(SPEC) == ()
    plan = decide_template(observe(ignored=ignored))
    assert plan.action == "build"
    cond = {c.type: c for c in plan.status.conditions}["FieldsIgnored"]
    assert cond.status == "True" and cond.reason == "UnsupportedByBackend"
    assert "gpuEnabled: E2B sandboxes have no GPU" in cond.message and "50 GiB" in cond.message
    prev = E2BTemplateStatus(spec_hash=spec_hash(SPEC), build_id="b1", template_id="t1")
    ready = decide_template(
        observe(ignored=ignored[:1], previous=prev, build=BuildProgress("t1", "b1", "ready"))
    )
    assert ready.status.phase == "Ready"
    assert {c.type: c.message for c in ready.status.conditions}["FieldsIgnored"] == ignored[0]
    assert "FieldsIgnored" not in {c.type for c in decide_template(observe()).status.conditions}
