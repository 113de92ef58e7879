"""The template collection and builder output on a real kube-apiserver."""

import json

import pytest

from e2b_operator.controlplane.cluster import LocalCluster
from e2b_operator.toolkit import TemplateBuilder
from unit.test_collection_manifests import COMMITTED

pytestmark = pytest.mark.cluster


def test_collection_kustomization_applies(kube: LocalCluster, namespace: str) -> None:
    out = kube.kubectl("-n", namespace, "apply", "-k", str(COMMITTED))
    assert out.stdout.count("created") == 7
    got = json.loads(kube.kubectl("-n", namespace, "get", "e2bt", "-o", "json").stdout)
    assert len(got["items"]) == 7


def test_apiserver_rejects_what_the_builder_rejects(kube: LocalCluster, namespace: str) -> None:
    builder = (
        TemplateBuilder.create_claude_flow_template("Too Many", ["a", "b", "c"])
        .set_claude_flow_config(max_agents=2)
        .set_main_script("print('{}')\n")
    )
    [problem] = builder.validate()
    manifest = {
        "apiVersion": "e2b.dev/v1alpha1",
        "kind": "E2BTemplate",
        "metadata": {"name": "too-many"},
        "spec": builder.draft(),
    }
    out = kube.kubectl(
        "-n", namespace, "apply", "--dry-run=server", "-f", "-",
        input=json.dumps(manifest), check=False,
    )  # fmt: skip
    assert out.returncode != 0
    assert problem.split(": ", 1)[1] in out.stderr
    builder.set_claude_flow_config(max_agents=3)
    out = kube.kubectl(
        "-n", namespace, "apply", "--dry-run=server", "-f", "-",
        input=json.dumps(builder.to_manifest()), check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
