"""Fixtures shared by the integration tests."""

from __future__ import annotations

import pytest

from e2b_operator.controlplane.cluster import LocalCluster
from support import built


@pytest.fixture
def app(kube: LocalCluster, namespace: str, operator) -> str:
    """A Ready template named app (support.template: made sick by touching /tmp/sick)."""
    return built(kube, namespace, detail=operator.tail)
