"""The seed's examples run as written: each test gets a namespace that is the kubeconfig's
current one (so `TemplateRegistry()` and `TemplateDeployer()` work without arguments), with
the operator running; `collection(...)` applies templates from manifests/templates/."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from support import wait_condition

COLLECTION = Path(__file__).resolve().parents[2] / "manifests" / "templates"


@pytest.fixture(autouse=True)
def current_namespace(
    kube, namespace: str, operator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A kubeconfig whose current context is in the test's namespace, as KUBECONFIG."""
    config = yaml.safe_load(Path(kube.kubeconfig).read_text())
    current = config["current-context"]
    for context in config["contexts"]:
        if context["name"] == current:
            context["context"]["namespace"] = namespace
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    monkeypatch.setenv("KUBECONFIG", str(path))
    yield namespace


@pytest.fixture
def collection(kube, namespace: str, operator) -> Callable[..., None]:
    """Apply templates of the collection (by metadata.name) and wait until they are built."""

    def apply(*names: str) -> None:
        for name in names:
            kube.kubectl("-n", namespace, "apply", "-f", str(COLLECTION / f"{name}.yaml"))
        for name in names:
            wait_condition(kube, namespace, "e2bt", name, "Ready", 300, operator.tail)

    return apply
