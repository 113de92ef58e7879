"""API package: committed CRDs match the models, are structural, validate like the apiserver."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import cel
import pytest
import yaml

from e2b_operator.api import (
    KINDS,
    E2BDeploymentSpec,
    E2BDeploymentStatus,
    TemplateType,
    crd,
    openapi_schema,
    problems,
    validate,
)
from e2b_operator.api.crds import render
from e2b_operator.api.validation import defaulted

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "manifests" / "examples"
API = "e2b.dev/v1alpha1"

TEMPLATE: dict[str, Any] = {
    "apiVersion": API,
    "kind": "E2BTemplate",
    "metadata": {"name": "t"},
    "spec": {"type": "pythonBase", "files": {"mainScript": "print('hi')"}},
}
DEPLOYMENT: dict[str, Any] = {
    "apiVersion": API,
    "kind": "E2BDeployment",
    "metadata": {"name": "d"},
    "spec": {"templateRef": {"name": "t"}},
}
EXECUTION: dict[str, Any] = {
    "apiVersion": API,
    "kind": "E2BExecution",
    "metadata": {"name": "x"},
    "spec": {"deploymentRef": {"name": "d"}, "input": {"symbols": ["AAPL"], "n": 1}},
}
SECRET_ENV = {"secretKeyRef": {"name": "s", "key": "k"}}


def _obj(base: dict[str, Any], **spec: Any) -> dict[str, Any]:
    obj = copy.deepcopy(base)
    for key, value in spec.items():
        if value is None:
            obj["spec"].pop(key, None)
        else:
            obj["spec"][key] = value
    return obj


def _t(**spec: Any) -> dict[str, Any]:
    return _obj(TEMPLATE, **spec)


def _d(**spec: Any) -> dict[str, Any]:
    return _obj(DEPLOYMENT, **spec)


def _x(**spec: Any) -> dict[str, Any]:
    return _obj(EXECUTION, **spec)


def _files(script: str | None) -> dict[str, Any]:
    return {} if script is None else {"mainScript": script}


# (id, object, field path the apiserver and problems() must both name)
INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("negative-replicas", _d(replicas=-1), "spec.replicas"),
    ("memory-too-large", _t(requirements={"memoryMB": 100000}), "spec.requirements.memoryMB"),
    ("memory-too-small", _t(requirements={"memoryMB": 64}), "spec.requirements.memoryMB"),
    ("missing-main-script", _t(files=_files(None)), "spec.files.mainScript"),
    ("empty-main-script", _t(files=_files("")), "spec.files.mainScript"),
    ("unknown-runtime", _t(requirements={"runtime": "python2.7"}), "spec.requirements.runtime"),
    ("unknown-type", _t(type="golang"), "spec.type"),
    ("cpu-cores-zero", _t(requirements={"cpuCores": 0}), "spec.requirements.cpuCores"),
    ("bad-env-name", _d(env=[{"name": "1BAD", "value": "x"}]), "spec.env[0].name"),
    (
        "duplicate-env",
        _d(env=[{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]),
        "spec.env[1]",
    ),
    (
        "duplicate-template-env",
        _t(requirements={"env": [{"name": "A"}, {"name": "A", "value": "2"}]}),
        "spec.requirements.env[1]",
    ),
    (
        "env-value-and-value-from",
        _d(env=[{"name": "A", "value": "1", "valueFrom": SECRET_ENV}]),
        "spec.env[0]",
    ),
    ("env-without-value", _d(env=[{"name": "A"}]), "spec.env[0]"),
    (
        "surge-and-unavailable-zero",
        _d(strategy={"rollingUpdate": {"maxUnavailable": 0, "maxSurge": "0%"}}),
        "spec.strategy.rollingUpdate",
    ),
    (
        "surge-percent-over-100",
        _d(strategy={"rollingUpdate": {"maxSurge": "150%"}}),
        "spec.strategy.rollingUpdate.maxSurge",
    ),
    ("trading-without-section", _t(type="tradingAgent"), "spec.tradingAgent"),
    ("claude-flow-without-section", _t(type="claudeFlowSwarm"), "spec.claudeFlow"),
    ("claude-code-without-section", _t(type="claudeCodeSparc"), "spec.claudeCode"),
    (
        "reviewer-without-linters",
        _t(type="claudeCodeReviewer", claudeCode={"sparcMode": "review"}),
        "spec.claudeCode.linters",
    ),
    (
        "neural-without-neural",
        _t(type="claudeFlowNeural", claudeFlow={"enableNeural": False}),
        "spec.claudeFlow.enableNeural",
    ),
    (
        "unknown-swarm-topology",
        _t(type="claudeFlowSwarm", claudeFlow={"swarmTopology": "torus"}),
        "spec.claudeFlow.swarmTopology",
    ),
    (
        "more-agent-types-than-max",
        _t(type="claudeFlowSwarm", claudeFlow={"maxAgents": 1, "agentTypes": ["a", "b"]}),
        "spec.claudeFlow.agentTypes",
    ),
    (
        "unknown-execution-mode",
        _t(type="tradingAgent", tradingAgent={"strategyType": "m", "executionMode": "yolo"}),
        "spec.tradingAgent.executionMode",
    ),
    (
        "node-base-python-runtime",
        _t(type="nodeBase", requirements={"runtime": "python3.11"}),
        "spec.requirements.runtime",
    ),
    ("timeout-too-large", _d(timeoutSeconds=100000), "spec.timeoutSeconds"),
    ("timeout-too-small", _d(timeoutSeconds=1), "spec.timeoutSeconds"),
    (
        "instance-configs-and-shard-by",
        _d(config={"s": [1, 2]}, instanceConfigs=[{"a": 1}], shardBy="s"),
        "spec.shardBy",
    ),
    (
        "health-timeout-over-interval",
        _d(healthCheck={"intervalSeconds": 10, "timeoutSeconds": 20}),
        "spec.healthCheck.timeoutSeconds",
    ),
    ("missing-template-ref", _d(templateRef=None), "spec.templateRef"),
    ("unknown-field", _d(replica=2), "spec.replica"),
    ("execution-both-targets", _x(templateRef={"name": "t"}), "spec"),
    ("execution-no-target", _x(deploymentRef=None), "spec"),
    (
        "execution-sandbox-without-deployment",
        _x(deploymentRef=None, templateRef={"name": "t"}, sandboxID="sbx"),
        "spec.sandboxID",
    ),
    ("execution-timeout-zero", _x(timeoutSeconds=0), "spec.timeoutSeconds"),
    ("execution-timeout-too-large", _x(timeoutSeconds=3601), "spec.timeoutSeconds"),
    ("execution-input-not-object", _x(input=[1, 2]), "spec.input"),
]


def example_objects() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(EXAMPLES.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            yield path.name, doc


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}[*]")
    if "items" in node:
        yield from walk(node["items"], f"{path}[]")


def test_committed_crds_match_models() -> None:
    """crds/ and the Helm chart's crds/ hold exactly what `make crds` writes."""
    for d in ("crds", "manifests/helm/e2b-operator/crds"):
        assert {p.name for p in (ROOT / d).glob("*.yaml")} == set(render()), d
        for filename, text in render().items():
            committed = ROOT / d / filename
            assert committed.read_text() == text, f"{d}/{filename} is stale: run `make crds`"


def test_crd_names_and_subresources() -> None:
    template, deployment = crd("E2BTemplate"), crd("E2BDeployment")
    assert template["metadata"]["name"] == "e2btemplates.e2b.dev"
    assert template["spec"]["names"]["shortNames"] == ["e2bt"]
    assert deployment["spec"]["names"]["shortNames"] == ["e2bd"]
    for c in (template, deployment):
        assert c["spec"]["scope"] == "Namespaced"
        assert c["spec"]["names"]["categories"] == ["e2b"]
        (version,) = c["spec"]["versions"]
        assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
        assert "status" in version["subresources"]
    scale = deployment["spec"]["versions"][0]["subresources"]["scale"]
    assert scale == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }


@pytest.mark.parametrize("kind", [k.kind for k in KINDS])
def test_schema_is_structural(kind: str) -> None:
    forbidden = {"$ref", "definitions", "$defs", "patternProperties", "uniqueItems", "title"}
    for path, node in walk(openapi_schema(kind)):
        assert not forbidden & node.keys(), f"{path}: forbidden keys {forbidden & node.keys()}"
        assert node.get("additionalProperties", True) is not False, path
        if node.get("x-kubernetes-int-or-string"):
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
        elif node.get("x-kubernetes-preserve-unknown-fields") and "type" not in node:
            assert path == ".status.result", f"{path}: untyped (any JSON) node"
        else:
            assert "type" in node, f"{path}: no type"
            assert "anyOf" not in node and "oneOf" not in node, path
        if path == ".metadata":
            continue
        if node.get("type") == "object" and "properties" not in node:
            assert "additionalProperties" in node or node.get(
                "x-kubernetes-preserve-unknown-fields"
            ), f"{path}: free-form object without preserve-unknown-fields"
        if node.get("type") == "array":
            assert "maxItems" in node, f"{path}: unbounded list"
        if path.startswith(".status") and node.get("type") == "string":
            assert "maxLength" in node or "format" in node or "enum" in node, path
        if path and not path.endswith(("[]", "[*]")):
            assert node.get("description"), f"{path}: no description for kubectl explain"


def test_list_maps_and_descriptions() -> None:
    spec = openapi_schema("E2BDeployment")["properties"]["spec"]
    assert spec["properties"]["env"]["x-kubernetes-list-type"] == "map"
    assert spec["properties"]["env"]["x-kubernetes-list-map-keys"] == ["name"]
    status = openapi_schema("E2BDeployment")["properties"]["status"]
    assert status["properties"]["conditions"]["x-kubernetes-list-map-keys"] == ["type"]
    requirements = openapi_schema("E2BTemplate")["properties"]["spec"]["properties"]["requirements"]
    assert "MiB" in requirements["properties"]["memoryMB"]["description"]
    assert requirements["description"]


def test_every_rule_compiles_with_cel() -> None:
    for kind in KINDS:
        for _, node in walk(openapi_schema(kind.kind)):
            for item in node.get("x-kubernetes-validations", []):
                cel.compile(item["rule"])
                assert item["message"]


def test_examples_cover_every_type_and_validate() -> None:
    seen: set[str] = set()
    for name, obj in example_objects():
        if obj["apiVersion"] != API:
            continue
        assert problems(obj["kind"], obj) == [], name
        model = validate(obj["kind"], obj)
        assert model.metadata["name"] == obj["metadata"]["name"]
        if obj["kind"] == "E2BTemplate":
            seen.add(obj["spec"]["type"])
    assert seen == {t.value for t in TemplateType}


@pytest.mark.parametrize(
    ("obj", "field"), [(o, f) for _, o, f in INVALID], ids=[i for i, *_ in INVALID]
)
def test_problems_name_the_field(obj: dict[str, Any], field: str) -> None:
    found = problems(obj["kind"], obj)
    assert any(line.startswith(f"{field}:") for line in found), found


def test_minimal_objects_are_valid() -> None:
    assert problems("E2BTemplate", TEMPLATE) == []
    assert problems("E2BDeployment", DEPLOYMENT) == []
    assert problems("E2BExecution", EXECUTION) == []


def test_execution_crd() -> None:
    x = crd("E2BExecution")
    assert x["metadata"]["name"] == "e2bexecutions.e2b.dev"
    assert x["spec"]["names"]["shortNames"] == ["e2bx"]
    (version,) = x["spec"]["versions"]
    assert [c["name"] for c in version["additionalPrinterColumns"]][:3] == [
        "Phase",
        "Target",
        "Exit",
    ]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["timeoutSeconds"]["default"] == 60
    assert spec["properties"]["input"]["x-kubernetes-preserve-unknown-fields"] is True
    rules = {r["rule"]: r["message"] for r in spec["x-kubernetes-validations"]}
    assert "spec is immutable" in rules["self == oldSelf"]


def test_defaults_like_the_apiserver() -> None:
    schema = openapi_schema("E2BDeployment")["properties"]["spec"]
    spec = defaulted(schema, {"templateRef": {"name": "t"}, "config": None})
    assert spec["replicas"] == 1 and spec["paused"] is False and "config" not in spec
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }
    assert spec["healthCheck"] == {
        "intervalSeconds": 30,
        "failureThreshold": 3,
        "timeoutSeconds": 10,
        "startupTimeoutSeconds": 120,
    }


def test_status_wire_form() -> None:
    status = E2BDeploymentStatus(
        observed_generation=2,
        replicas=3,
        ready_replicas=2,
        ready="2/3",
        selector="e2b.dev/deployment=d",
        conditions=[
            {
                "type": "Ready",
                "status": "False",
                "reason": "Progressing",
                "lastTransitionTime": "2026-11-26T10:00:00.123456Z",
            }
        ],
        sandboxes=[{"index": 0, "sandbox_id": "sbx-1", "phase": "Running", "healthy": True}],
    ).wire()
    assert status["readyReplicas"] == 2 and status["observedGeneration"] == 2
    assert status["conditions"][0]["lastTransitionTime"] == "2026-11-26T10:00:00Z"
    assert status["sandboxes"][0]["sandboxID"] == "sbx-1"
    assert problems("E2BDeployment", {**DEPLOYMENT, "status": status}) == []


def test_from_wire_accepts_read_only_mappings() -> None:
    env = MappingProxyType({"name": "A", "valueFrom": MappingProxyType(SECRET_ENV)})
    raw = MappingProxyType({"templateRef": {"name": "t"}, "env": [env], "shardBy": "s"})
    spec = E2BDeploymentSpec.from_wire(raw)
    assert spec.env[0].value_from is not None
    assert spec.env[0].value_from.secret_key_ref.key == "k"
    assert spec.replicas == 1 and spec.strategy.rolling_update.max_surge == "25%"
    assert spec.wire()["shardBy"] == "s"
