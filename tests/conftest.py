"""Shared fixtures: a real local control plane for the whole test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from e2b_operator import localstack
from e2b_operator.controlplane import binaries, processes
from e2b_operator.controlplane.cluster import LocalCluster
from support import fresh_namespace

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
    with fresh_namespace(kube) as name:
        yield name


@pytest.fixture(scope="session")
def e2b(tmp_path_factory: pytest.TempPathFactory) -> Iterator[localstack.E2BLocal]:
    """A real e2b-local server on a free loopback port."""
    server = localstack.start_e2b_local(tmp_path_factory.mktemp("e2b"))
    yield server
    server.stop()
    assert server.api_key not in server.log.read_text()  # test_api_auth's key check, whole log


@pytest.fixture(scope="session")
def operator(
    kube: LocalCluster, e2b: localstack.E2BLocal, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The operator as a real `kopf run` process against the local cluster and e2b-local."""
    localstack.store_api_key(kube, e2b)
    proc = OperatorProcess(tmp_path_factory.mktemp("operator"), kube, e2b)
    proc.start()
    yield proc
    proc.stop()


class OperatorProcess:
    """Start, stop and restart the operator; its log survives restarts."""

    ENV: ClassVar[dict[str, str]] = {
        "E2B_OPERATOR_ORPHAN_SWEEP_SECONDS": "3",
        "E2B_OPERATOR_ORPHAN_GRACE_SECONDS": "5",
        # E2B's Pro limits, the operator's own default: test_limits turns e2b-local's on and
        # needs no restart of its own; elsewhere e2b-local has none, and 5 creates/s is ample.
        "E2B_OPERATOR_RATE_PRESET": "pro",
        # A create that gets no answer is sent again after 5 s, not 10 (test_failures).
        "E2B_CREATE_TIMEOUT": "5",
    }

    def __init__(self, workdir: Path, kube: LocalCluster, e2b: localstack.E2BLocal) -> None:
        self.workdir, self.kube, self.e2b = workdir, kube, e2b
        self.handle: localstack.Operator | None = None

    @property
    def log(self) -> Path:
        return self.workdir / "logs" / "operator.log"

    def start(self, **env: str) -> None:
        """Start it; ``env`` adds to (or overrides) ENV for this run only."""
        extra = {**self.ENV, **env}
        self.handle = localstack.start_operator(self.workdir, self.kube, self.e2b, extra)

    def stop(self) -> None:
        if self.handle:
            self.handle.stop()
            self.handle = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def tail(self, lines: int = 60) -> str:
        return processes.tail(self.log, lines)
