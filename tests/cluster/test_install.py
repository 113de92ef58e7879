"""`kubectl apply -k manifests/` on a real kube-apiserver, and the operator's RBAC."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2b_operator.controlplane.cluster import LocalCluster

pytestmark = pytest.mark.cluster

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
OPERATOR = "system:serviceaccount:e2b-system:e2b-operator"
GATEWAY = "system:serviceaccount:e2b-system:e2b-operator-gateway"
CRS = ("e2btemplates.e2b.dev", "e2bdeployments.e2b.dev", "e2bexecutions.e2b.dev")

ALLOWED = [
    *[(verb, cr) for cr in CRS for verb in ("get", "list", "watch", "patch")],
    *[("patch", cr, "--subresource=status") for cr in CRS],
    ("delete", "e2bexecutions.e2b.dev"),
    ("get", "secrets", "-n", "default"),
    ("get", "secrets/e2b-api-key", "-n", "e2b-system"),
    ("create", "events", "-n", "default"),
    ("patch", "events", "-n", "default"),
    ("create", "events.events.k8s.io", "-n", "default"),
    ("patch", "events.events.k8s.io", "-n", "default"),
    ("create", "leases.coordination.k8s.io", "-n", "e2b-system"),
    ("get", "leases.coordination.k8s.io/e2b-operator", "-n", "e2b-system"),
    ("update", "leases.coordination.k8s.io/e2b-operator", "-n", "e2b-system"),
]
DENIED = [
    ("list", "secrets"),
    ("watch", "secrets"),
    ("list", "secrets", "-n", "e2b-system"),
    ("create", "secrets", "-n", "default"),
    ("delete", "secrets", "-n", "default"),
    ("create", "pods", "-n", "default"),
    ("get", "pods", "-n", "default"),
    *[(verb, cr) for cr in CRS for verb in ("create", "update", "deletecollection")],
    *[("delete", cr) for cr in CRS[:2]],
    *[("update", cr, "--subresource=status") for cr in CRS],
    ("list", "namespaces"),
    ("get", "customresourcedefinitions.apiextensions.k8s.io"),
    ("list", "clusterkopfpeerings.kopf.dev"),
    ("patch", "kopfpeerings.kopf.dev", "-n", "e2b-system"),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("delete", "events", "-n", "default"),
    ("update", "leases.coordination.k8s.io/kube-scheduler", "-n", "e2b-system"),
    ("delete", "leases.coordination.k8s.io/e2b-operator", "-n", "e2b-system"),
    ("list", "leases.coordination.k8s.io", "-n", "e2b-system"),
    ("create", "leases.coordination.k8s.io", "-n", "kube-system"),
    ("update", "leases.coordination.k8s.io/e2b-operator", "-n", "kube-system"),
]
GATEWAY_ALLOWED = [
    ("create", "tokenreviews.authentication.k8s.io"),
    ("create", "subjectaccessreviews.authorization.k8s.io"),
]
GATEWAY_DENIED = [
    *[(verb, cr) for cr in CRS for verb in ("get", "list", "create", "patch", "delete")],
    ("get", "secrets"),
    ("impersonate", "serviceaccounts"),
    ("impersonate", "users"),
    ("create", "serviceaccounts/token", "-n", "default"),
    ("create", "localsubjectaccessreviews.authorization.k8s.io", "-n", "default"),
]


@pytest.fixture(scope="module")
def system_namespace(kube: LocalCluster) -> Iterator[None]:
    """e2b-system created first, as the install steps do (its Secret goes in before the apply).

    Everything the install adds is removed afterwards except the CRDs, which the session needs;
    the namespace is waited for, so the session's operator and gateway can recreate it.
    """
    kube.kubectl("create", "namespace", "e2b-system")
    yield
    kube.kubectl("delete", "namespace", "e2b-system", "--timeout=120s", check=False)
    for name in ("e2b-operator", "e2b-operator-gateway"):
        kube.kubectl("delete", "clusterrolebinding,clusterrole", name, check=False)


@pytest.fixture(scope="module")
def installed(kube: LocalCluster, system_namespace: None) -> str:
    out = kube.kubectl("apply", "-k", str(MANIFESTS))
    return out.stdout + out.stderr


def test_server_dry_run(kube: LocalCluster, system_namespace: None) -> None:
    out = kube.kubectl("apply", "--dry-run=server", "-k", str(MANIFESTS), check=False)
    assert out.returncode == 0, out.stderr
    # Exactly the install: no Secret (the key is never shipped), no examples.
    objects = {line.split()[0] for line in out.stdout.splitlines()}
    assert objects == {
        "namespace/e2b-system",
        "customresourcedefinition.apiextensions.k8s.io/e2bdeployments.e2b.dev",
        "customresourcedefinition.apiextensions.k8s.io/e2bexecutions.e2b.dev",
        "customresourcedefinition.apiextensions.k8s.io/e2btemplates.e2b.dev",
        "serviceaccount/e2b-operator",
        "clusterrole.rbac.authorization.k8s.io/e2b-operator",
        "clusterrolebinding.rbac.authorization.k8s.io/e2b-operator",
        "role.rbac.authorization.k8s.io/e2b-operator-leader-election",
        "rolebinding.rbac.authorization.k8s.io/e2b-operator-leader-election",
        "configmap/e2b-operator-settings",
        "deployment.apps/e2b-operator",
        "service/e2b-operator-metrics",
        "serviceaccount/e2b-operator-gateway",
        "clusterrole.rbac.authorization.k8s.io/e2b-operator-gateway",
        "clusterrolebinding.rbac.authorization.k8s.io/e2b-operator-gateway",
        "clusterrole.rbac.authorization.k8s.io/e2b-user",
        "deployment.apps/e2b-operator-gateway",
        "service/e2b-operator-gateway",
    }, out.stdout


def test_install_meets_restricted_pod_security(installed: str) -> None:
    assert "violate PodSecurity" not in installed, installed


def test_deployment(kube: LocalCluster, installed: str) -> None:
    got = json.loads(
        kube.kubectl("-n", "e2b-system", "get", "deployment", "e2b-operator", "-o", "json").stdout
    )
    spec = got["spec"]
    # Two replicas behind a Lease; a rolling update starts the new pod (standby) first.
    assert spec["replicas"] == 2 and spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "e2b-operator"
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["command"][:2] == ["kopf", "run"]
    assert {"--all-namespaces", "--standalone"} <= set(container["command"])
    assert container["livenessProbe"]["httpGet"] == {
        "path": "/healthz",
        "port": "health",
        "scheme": "HTTP",
    }
    assert container["envFrom"] == [{"configMapRef": {"name": "e2b-operator-settings"}}]
    assert {"name": "E2B_API_KEY_SECRET", "value": "e2b-system/e2b-api-key"} in container["env"]
    assert {"name": "E2B_OPERATOR_LEASE", "value": "e2b-system/e2b-operator"} in container["env"]
    assert {"name": "E2B_OPERATOR_STANDBY_HEALTH", "value": "0.0.0.0:8080"} in container["env"]
    assert container["resources"]["requests"] and container["resources"]["limits"]


def test_gateway_deployment(kube: LocalCluster, installed: str) -> None:
    """Two stateless replicas of the operator's image behind a Service, with probes."""
    get = lambda kind, name: json.loads(  # noqa: E731
        kube.kubectl("-n", "e2b-system", "get", kind, name, "-o", "json").stdout
    )
    spec = get("deployment", "e2b-operator-gateway")["spec"]
    operator = get("deployment", "e2b-operator")["spec"]["template"]["spec"]["containers"][0]
    assert spec["replicas"] == 2
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "e2b-operator-gateway"
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["image"] == operator["image"]
    assert container["command"][0] == "e2b-operator-gateway"
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"
    assert "envFrom" not in container  # no E2B settings or key: it never talks to E2B
    service = get("service", "e2b-operator-gateway")["spec"]
    assert service["selector"] == spec["selector"]["matchLabels"]
    assert service["ports"][0]["targetPort"] == "http"


def _review(who: str, verb: str, resource: str, *flags: str) -> dict[str, Any]:
    """The SelfSubjectAccessReview `kubectl auth can-i VERB RESOURCE FLAGS --as=WHO` sends:
    RESOURCE is resource[.group][/name]; flags -n NS and --subresource=S, the namespace
    `default` unless -n says otherwise (no flags at all: --all-namespaces)."""
    resource, _, name = resource.partition("/")
    resource, _, group = resource.partition(".")
    attributes = {"verb": verb, "resource": resource, "group": group, "name": name}
    attributes["namespace"] = "default" if flags else ""
    args = iter(flags)
    for flag in args:
        if flag == "-n":
            attributes["namespace"] = next(args)
        elif flag.startswith("--subresource="):
            attributes["subresource"] = flag.split("=", 1)[1]
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attributes},
    }


CHECKS = {
    OPERATOR: ALLOWED + DENIED,
    GATEWAY: GATEWAY_ALLOWED + GATEWAY_DENIED,
}


def _documents(text: str) -> list[dict[str, Any]]:
    """kubectl's -o json of several objects: JSON documents one after another (or a List)."""
    decoder, docs, at = json.JSONDecoder(), [], 0
    while text[at:].strip():
        while text[at].isspace():
            at += 1
        doc, at = decoder.raw_decode(text, at)
        docs += doc["items"] if doc.get("kind") == "List" else [doc]
    return docs


@pytest.fixture(scope="module")
def allowed(kube: LocalCluster, installed: str) -> dict[tuple[str, tuple[str, ...]], bool]:
    """The apiserver's RBAC answer to every check, as each ServiceAccount (impersonated, as
    `kubectl auth can-i --as` does): one kubectl call per account, not one per check."""
    answers = {}
    for who, checks in CHECKS.items():
        reviews = [_review(who, *check) for check in checks]
        text = json.dumps({"apiVersion": "v1", "kind": "List", "items": reviews})
        out = kube.kubectl("create", "-f", "-", "-o", "json", f"--as={who}", input=text)
        items = _documents(out.stdout)
        assert len(items) == len(checks), out.stdout + out.stderr
        for check, review, item in zip(checks, reviews, items, strict=True):
            sent = {k: v for k, v in review["spec"]["resourceAttributes"].items() if v}
            got = item["spec"]["resourceAttributes"]
            assert {k: got.get(k) for k in sent} == sent, (check, got)
            answers[who, check] = item["status"]["allowed"]
    return answers


@pytest.mark.parametrize("check", ALLOWED, ids=" ".join)
def test_operator_may(allowed, check: tuple[str, ...]) -> None:
    assert allowed[OPERATOR, check]


@pytest.mark.parametrize("check", DENIED, ids=" ".join)
def test_operator_may_not(allowed, check: tuple[str, ...]) -> None:
    assert not allowed[OPERATOR, check]


@pytest.mark.parametrize("check", GATEWAY_ALLOWED, ids=" ".join)
def test_gateway_may(allowed, check: tuple[str, ...]) -> None:
    assert allowed[GATEWAY, check]


@pytest.mark.parametrize("check", GATEWAY_DENIED, ids=" ".join)
def test_gateway_may_not(allowed, check: tuple[str, ...]) -> None:
    assert not allowed[GATEWAY, check]


def test_argocd_health_checks_merge_into_argocd_cm(kube: LocalCluster) -> None:
    """The documented server-side apply adds the Lua keys and keeps the others."""
    kube.kubectl("create", "namespace", "argocd")
    try:
        kube.kubectl("-n", "argocd", "create", "configmap", "argocd-cm", "--from-literal=url=x")
        kube.kubectl(
            "apply",
            "--server-side",
            "--field-manager=e2b-health",
            "-k",
            str(MANIFESTS / "gitops" / "argocd"),
        )
        data = json.loads(
            kube.kubectl("-n", "argocd", "get", "configmap", "argocd-cm", "-o", "json").stdout
        )["data"]
    finally:
        kube.kubectl("delete", "namespace", "argocd", "--wait=false", check=False)
    checks = MANIFESTS / "gitops" / "argocd" / "e2b.dev"
    assert data == {
        "url": "x",
        **{
            f"resource.customizations.health.e2b.dev_{kind}": (
                checks / kind / "health.lua"
            ).read_text()
            for kind in ("E2BDeployment", "E2BTemplate")
        },
    }
