"""The generated CRDs on a real kube-apiserver: install, validate, default, scale, columns."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2b_operator.api import KINDS, problems
from e2b_operator.controlplane.cluster import LocalCluster
from support import fresh_namespace
from unit.test_crds import DEPLOYMENT, EXAMPLES, EXECUTION, INVALID, TEMPLATE

pytestmark = pytest.mark.cluster


def _apply(kube: LocalCluster, namespace: str, obj: dict[str, Any], *flags: str) -> Any:
    return kube.kubectl(
        "-n", namespace, "apply", *flags, "-f", "-", input=json.dumps(obj), check=False
    )


@pytest.fixture(scope="module")
def dry_run_namespace(kube: LocalCluster) -> Iterator[str]:
    """One namespace for the module's server-side dry runs (they leave nothing in it)."""
    with fresh_namespace(kube) as name:
        yield name


def test_crds_are_established(kube: LocalCluster) -> None:
    for k in KINDS:
        out = kube.kubectl("get", "crd", k.crd_name, "-o", "json")
        conditions = {
            c["type"]: c["status"] for c in json.loads(out.stdout)["status"]["conditions"]
        }
        assert conditions["Established"] == "True"
        assert conditions["NamesAccepted"] == "True"


@pytest.mark.parametrize(
    "path",
    sorted(p for p in EXAMPLES.glob("*.yaml") if p.name != "kustomization.yaml"),
    ids=lambda p: p.name,
)
def test_example_validates_server_side(
    kube: LocalCluster, dry_run_namespace: str, path: Path
) -> None:
    out = kube.kubectl(
        "-n", dry_run_namespace, "apply", "--dry-run=server", "-f", str(path), check=False
    )
    assert out.returncode == 0, out.stderr


def test_kustomization_applies(kube: LocalCluster, dry_run_namespace: str) -> None:
    out = kube.kubectl("-n", dry_run_namespace, "apply", "--dry-run=server", "-k", str(EXAMPLES))
    assert out.stdout.count("created (server dry run)") == 10


@pytest.mark.parametrize(
    ("obj", "field"), [(o, f) for _, o, f in INVALID], ids=[i for i, *_ in INVALID]
)
def test_invalid_object_is_rejected(
    kube: LocalCluster, dry_run_namespace: str, obj: dict[str, Any], field: str
) -> None:
    out = _apply(kube, dry_run_namespace, obj, "--dry-run=server")
    assert out.returncode != 0, f"accepted: {out.stdout}"
    assert field in out.stderr, out.stderr
    # Python validation agrees with the apiserver on the same object.
    assert any(line.startswith(f"{field}:") for line in problems(obj["kind"], obj))


def test_defaults_are_applied(kube: LocalCluster, namespace: str) -> None:
    for obj in (TEMPLATE, DEPLOYMENT):
        _apply(kube, namespace, obj).check_returncode()
    got = json.loads(kube.kubectl("-n", namespace, "get", "e2bd", "d", "-o", "json").stdout)
    spec = got["spec"]
    assert spec["replicas"] == 1 and spec["timeoutSeconds"] == 300 and spec["paused"] is False
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
    got = json.loads(kube.kubectl("-n", namespace, "get", "e2bt", "t", "-o", "json").stdout)
    requirements = got["spec"]["requirements"]
    assert requirements["runtime"] == "python3.10" and requirements["memoryMB"] == 1024
    assert requirements["cpuCores"] == 2 and requirements["networkAccess"] is True
    assert got["spec"]["version"] == "1.0.0"


def test_scale_subresource(kube: LocalCluster, namespace: str) -> None:
    _apply(kube, namespace, DEPLOYMENT).check_returncode()
    kube.kubectl("-n", namespace, "scale", "e2bdeployment/d", "--replicas=3")
    out = kube.kubectl("-n", namespace, "get", "e2bd", "d", "-o", "jsonpath={.spec.replicas}")
    assert out.stdout == "3"
    scale = kube.kubectl(
        "get", "--raw", f"/apis/e2b.dev/v1alpha1/namespaces/{namespace}/e2bdeployments/d/scale"
    )
    assert json.loads(scale.stdout)["spec"]["replicas"] == 3
    bad = kube.kubectl("-n", namespace, "scale", "e2bd/d", "--replicas=-1", check=False)
    assert bad.returncode != 0


def test_printer_columns(kube: LocalCluster, namespace: str) -> None:
    for obj in (TEMPLATE, DEPLOYMENT):
        _apply(kube, namespace, obj).check_returncode()
    out = kube.kubectl("-n", namespace, "get", "e2bd,e2bt").stdout
    lines = out.splitlines()
    deployment_header = next(
        line for line in lines if line.startswith("NAME") and "TEMPLATE" in line
    )
    assert deployment_header.split() == ["NAME", "READY", "TEMPLATE", "STATUS", "AGE"]
    template_header = next(line for line in lines if line.startswith("NAME") and "TYPE" in line)
    assert template_header.split() == ["NAME", "TYPE", "RUNTIME", "PHASE", "AGE"]
    assert "pythonBase" in out and "python3.10" in out
    wide = kube.kubectl("-n", namespace, "get", "e2bd", "-o", "wide").stdout
    assert "DESIRED" in wide and "PAUSED" in wide
    assert "e2bdeployment" in kube.kubectl("-n", namespace, "get", "e2b").stdout


def test_explain_shows_descriptions(kube: LocalCluster) -> None:
    out = kube.kubectl("explain", "e2btemplate.spec.requirements").stdout
    assert "Runtime, resources, packages and environment" in out
    assert "memoryMB" in out and "MiB" in out
    out = kube.kubectl("explain", "e2bdeployment.spec.strategy.rollingUpdate").stdout
    assert "maxSurge" in out and "percentage" in out
    out = kube.kubectl("explain", "e2bexecution.spec.credentials.secretRef").stdout
    assert "never read from another one" in out and "apiKeyKey" in out


def test_execution_spec_is_immutable(kube: LocalCluster, namespace: str) -> None:
    _apply(kube, namespace, EXECUTION).check_returncode()
    got = json.loads(kube.kubectl("-n", namespace, "get", "e2bx", "x", "-o", "json").stdout)
    assert got["spec"]["timeoutSeconds"] == 60
    edit = kube.kubectl(
        "-n",
        namespace,
        "patch",
        "e2bx",
        "x",
        "--type=merge",
        "-p",
        json.dumps({"spec": {"input": {"n": 2}}}),
        check=False,
    )
    assert edit.returncode != 0
    assert "spec is immutable once the execution has started" in edit.stderr
    status = {
        "status": {
            "phase": "Succeeded",
            "target": "deployment/d",
            "exitCode": 0,
            "result": [1, {"a": "b"}],
        }
    }
    kube.kubectl(
        "-n",
        namespace,
        "patch",
        "e2bx",
        "x",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )
    kube.kubectl("-n", namespace, "label", "e2bx", "x", "run=1")  # metadata stays editable
    out = kube.kubectl("-n", namespace, "get", "e2bx").stdout.splitlines()
    assert out[0].split() == ["NAME", "PHASE", "TARGET", "EXIT", "AGE"]
    assert out[1].split()[:4] == ["x", "Succeeded", "deployment/d", "0"]
    got = json.loads(kube.kubectl("-n", namespace, "get", "e2bx", "x", "-o", "json").stdout)
    assert got["status"]["result"] == [1, {"a": "b"}]
