"""Toolkit fixtures: a registry and deployer in a fresh namespace with the operator running."""

from __future__ import annotations

import pytest

from e2b_operator.toolkit import TemplateDeployer, TemplateRegistry


@pytest.fixture
def registry(kube, namespace: str, operator) -> TemplateRegistry:
    return TemplateRegistry(namespace=namespace)


@pytest.fixture
def deployer(kube, namespace: str, operator) -> TemplateDeployer:
    return TemplateDeployer(namespace=namespace, poll_seconds=0.3, ready_timeout=180)
