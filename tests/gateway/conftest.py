"""Gateway fixtures: one gateway process per session, serving one namespace in which
alice (a ServiceAccount bound to the shipped e2b-user ClusterRole) may work and bob may not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from e2b_operator import localstack
from e2b_operator.controlplane.cluster import LocalCluster
from support import fresh_namespace, wait_condition

from .gateway_support import SEED_DEPLOY, Users, curl, header_file

ROOT = Path(__file__).resolve().parents[2]
USER_ROLE = "e2b-user"


@pytest.fixture(scope="session")
def gateway_namespace(kube: LocalCluster) -> Iterator[str]:
    with fresh_namespace(kube, "gw") as name:
        yield name


@pytest.fixture(scope="session")
def gateway(
    kube: LocalCluster, operator, gateway_namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[localstack.Gateway]:
    """The real `e2b-operator-gateway` process; its default namespace is the test's."""
    server = localstack.start_gateway(tmp_path_factory.mktemp("gateway"), kube, gateway_namespace)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def users(kube: LocalCluster, gateway_namespace: str, operator) -> Users:
    """Tokens of alice (e2b-user in the namespace) and bob (no rights)."""
    ns = gateway_namespace
    kube.kubectl("apply", "-f", str(ROOT / "manifests/install/gateway-rbac.yaml"))
    for name in ("alice", "bob"):
        kube.kubectl("-n", ns, "create", "serviceaccount", name)
    kube.kubectl(
        "-n", ns, "create", "rolebinding", "alice", f"--clusterrole={USER_ROLE}",
        f"--serviceaccount={ns}:alice",
    )  # fmt: skip
    token = lambda sa: kube.kubectl("-n", ns, "create", "token", sa).stdout.strip()  # noqa: E731
    return Users(ns, token("alice"), token("bob"))


@pytest.fixture(scope="session")
def python_base(kube: LocalCluster, gateway_namespace: str, operator) -> str:
    """The collection's python-base template, built, in the gateway namespace."""
    path = ROOT / "manifests/templates/python-base.yaml"
    kube.kubectl("-n", gateway_namespace, "apply", "-f", str(path))
    wait_condition(kube, gateway_namespace, "e2bt", "python-base", "Ready", timeout=300)
    return "python-base"


@pytest.fixture(scope="session")
def alice(gateway: localstack.Gateway, users: Users) -> Iterator[httpx.Client]:
    with users.client(gateway, users.alice) as client:
        yield client


@pytest.fixture(scope="session")
def alice_headers(users: Users, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return header_file(tmp_path_factory.mktemp("alice"), users.alice)


@pytest.fixture(scope="session")
def seed_deployment(
    gateway: localstack.Gateway, alice_headers: Path, python_base: str
) -> tuple[int, dict]:
    """The seed's "Deploy Template" call, made once: (HTTP status, body)."""
    return curl(gateway, alice_headers, SEED_DEPLOY)


@pytest.fixture(scope="session")
def sandbox_id(seed_deployment: tuple[int, dict]) -> str:
    code, body = seed_deployment
    assert code == 201, body
    return body["sandbox_id"]
