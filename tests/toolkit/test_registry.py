"""TemplateRegistry against the real kube-apiserver."""

from __future__ import annotations

import pytest

from e2b_operator.controlplane.cluster import LocalCluster
from e2b_operator.toolkit import TemplateBuilder, TemplateRegistry
from e2b_operator.toolkit.cluster import ClusterUnreachable, NotFoundError
from e2b_operator.toolkit.collection import TEMPLATES

pytestmark = pytest.mark.cluster


def test_register_list_search_get_delete(kube: LocalCluster, namespace: str) -> None:
    registry = TemplateRegistry(namespace=namespace)
    for name in ("python-base", "trading-agent", "claude-code-reviewer"):
        registry.register_template(name, TEMPLATES[name]())
    assert [t.metadata["name"] for t in registry.list_templates()] == [
        "claude-code-reviewer",
        "python-base",
        "trading-agent",
    ]
    assert [t.metadata["name"] for t in registry.search_templates("trading")] == ["trading-agent"]
    assert [t.metadata["name"] for t in registry.search_templates("REVIEW linting")] == [
        "claude-code-reviewer"
    ]
    assert registry.search_templates("no-such-thing") == []
    got = registry.get_template("python_base")  # seed-style id
    assert got is not None and got.spec.type == "pythonBase"
    assert registry.get_template("missing") is None
    # kubectl sees what the registry did
    out = kube.kubectl("-n", namespace, "get", "e2bt", "-o", "name").stdout.split()
    assert out == [
        "e2btemplate.e2b.dev/claude-code-reviewer",
        "e2btemplate.e2b.dev/python-base",
        "e2btemplate.e2b.dev/trading-agent",
    ]
    registry.delete_template("python-base")
    assert registry.get_template("python-base") is None
    with pytest.raises(NotFoundError, match="template 'python-base' not found"):
        registry.delete_template("python-base")


def test_register_replaces_the_spec(kube: LocalCluster, namespace: str) -> None:
    registry = TemplateRegistry(namespace=namespace)
    builder = TemplateBuilder.create_python_template("Agent", "v1").set_main_script("print(1)")
    registry.register_template("custom_agent", builder.build(), labels={"team": "a"})
    builder.set_metadata(description="v2").set_hooks(health_check=None)
    updated = registry.register_template("custom_agent", builder, labels={"tier": "b"})
    assert updated.spec.description == "v2"
    assert updated.metadata["labels"] == {"team": "a", "tier": "b"}
    assert updated.metadata["generation"] == 2


def test_invalid_template_lists_every_problem(kube: LocalCluster, namespace: str) -> None:
    registry = TemplateRegistry(namespace=namespace)
    bad = {"type": "tradingAgent", "requirements": {"memoryMB": 1}, "files": {"mainScript": ""}}
    with pytest.raises(ValueError) as err:
        registry.register_template("bad", bad)
    text = str(err.value)
    for field in ("spec.tradingAgent", "spec.requirements.memoryMB", "spec.files.mainScript"):
        assert field in text
    assert registry.get_template("bad") is None


async def test_sync_registry_inside_an_event_loop(kube: LocalCluster, namespace: str) -> None:
    registry = TemplateRegistry(namespace=namespace)
    assert registry.list_templates() == []


def test_unreachable_cluster_is_one_clear_error(tmp_path) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u, namespace: ns1}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
    )
    registry = TemplateRegistry(kubeconfig=str(config))
    assert registry.namespace == "ns1"
    with pytest.raises(ClusterUnreachable, match="cannot reach the Kubernetes API"):
        registry.list_templates()
