"""Shared fixtures: a real local control plane for the whole test session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2b_operator.controlplane import binaries
from e2b_operator.controlplane.cluster import LocalCluster

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """etcd + kube-apiserver + kube-controller-manager with this repository's CRDs installed."""
    cluster = LocalCluster(tmp_path_factory.mktemp("kube"), binaries.resolve())
    cluster.start()
    try:
        cluster.install_crds(ROOT / "crds")
        previous = os.environ.get("KUBECONFIG")
        os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
        yield cluster
    finally:
        cluster.stop()
    if previous is None:
        os.environ.pop("KUBECONFIG", None)
    else:
        os.environ["KUBECONFIG"] = previous


@pytest.fixture
def namespace(kube: LocalCluster) -> Iterator[str]:
    """A fresh namespace per test; deleted afterwards without waiting."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    kube.kubectl("create", "namespace", name)
    yield name
    kube.kubectl("delete", "namespace", name, "--wait=false", check=False)
