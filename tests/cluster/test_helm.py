"""The Helm chart: lint, server-side dry run, install/upgrade/uninstall, same objects as -k."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2b_operator.controlplane import helm
from e2b_operator.controlplane.cluster import LocalCluster

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "manifests" / "helm" / "e2b-operator"
RELEASE, NAMESPACE = "e2b-operator-helm", "e2b-helm"
USER_ROLE = "e2b-user-helm"  # not e2b-user: test_install's apply -k leaves that one behind
Key = tuple[str, str | None, str]


class Helm:
    """The cached helm binary with its state in a scratch directory (not ~/.config)."""

    def __init__(self, exe: Path, home: Path) -> None:
        self.exe = exe
        self.homes = {f"HELM_{d}_HOME": str(home / d.lower()) for d in ("CACHE", "CONFIG", "DATA")}

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **self.homes}  # KUBECONFIG: the session's cluster, once it runs
        out = subprocess.run(
            [str(self.exe), *args], capture_output=True, text=True, env=env, timeout=300
        )
        if check:
            assert out.returncode == 0, f"helm {' '.join(args)}: {out.stderr}"
        return out

    def render(self, *args: str, namespace: str = "e2b-system") -> list[dict[str, Any]]:
        text = self("template", "e2b-operator", str(CHART), "-n", namespace, *args).stdout
        return [d for d in yaml.safe_load_all(text) if d]


@pytest.fixture(scope="module")
def helm_cli(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(helm.resolve(), tmp_path_factory.mktemp("helm"))


def by_key(docs: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    return {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in docs}


def test_lint(helm_cli: Helm) -> None:
    out = helm_cli("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in out.stdout, out.stdout
    options = ["--set", "metrics.enabled=true,metrics.serviceMonitor.enabled=true"]
    assert helm_cli("lint", "--strict", str(CHART), *options).returncode == 0


def _strip(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without what legitimately differs: labels, annotations, selectors (the
    chart's add the release), pod template metadata; Service type made explicit."""
    obj = json.loads(json.dumps(obj))
    obj["metadata"].pop("labels", None)
    obj["metadata"].pop("annotations", None)
    spec = obj.get("spec") or {}
    spec.pop("selector", None)
    spec.get("template", {}).pop("metadata", None)
    if obj["kind"] == "Service":
        spec.setdefault("type", "ClusterIP")
    return obj


def test_defaults_install_what_apply_k_installs(kube: LocalCluster, helm_cli: Helm) -> None:
    """Kinds, names, namespaces and every field (RBAC rules, env, command, ports, probes,
    resources, securityContext, affinity, CRDs; the ServiceMonitors of manifests/monitoring/
    too) match; only the Namespace is left to helm's --create-namespace, the dashboard
    ConfigMap to manifests/monitoring/, and the chart's labels and selectors add the release."""
    text = kube.kubectl("kustomize", str(ROOT / "manifests")).stdout
    text += "---\n" + kube.kubectl("kustomize", str(ROOT / "manifests" / "monitoring")).stdout
    kustomized = by_key(list(yaml.safe_load_all(text)))
    charted = by_key(
        helm_cli.render("--include-crds", "--set", "metrics.serviceMonitor.enabled=true")
    )
    assert kustomized.pop(("Namespace", None, "e2b-system"))
    assert kustomized.pop(("ConfigMap", "e2b-system", "e2b-operator-dashboard"))
    assert sorted(charted, key=str) == sorted(kustomized, key=str)
    for key, want in kustomized.items():
        got = charted[key]
        assert _strip(got) == _strip(want), key
        labels = got["metadata"].get("labels") or {}
        assert (want["metadata"].get("labels") or {}).items() <= labels.items(), key
        chart_spec, kust_spec = got.get("spec") or {}, want.get("spec") or {}
        if key[0] == "Service":
            assert kust_spec["selector"].items() <= chart_spec["selector"].items(), key
        elif key[0] in ("Deployment", "ServiceMonitor"):
            chart_sel = chart_spec["selector"]["matchLabels"]
            assert kust_spec["selector"]["matchLabels"].items() <= chart_sel.items(), key
        if key[0] == "Deployment":
            pod_labels = chart_spec["template"]["metadata"]["labels"]
            assert chart_sel.items() <= pod_labels.items(), key


def test_values_change_the_objects(helm_cli: Helm) -> None:
    docs = by_key(
        helm_cli.render(
            "--set-json",
            'watchNamespaces=["team-a","team-b"]',
            "--set",
            "metrics.port=9191,metrics.serviceMonitor.enabled=true",
            "--set",
            "gateway.enabled=false,replicaCount=3,image.repository=reg.example/e2b-operator",
            "--set",
            "image.tag=1.2.3,e2b.apiUrl=https://api.e2b.example,apiKeySecret.key=token",
        )
    )
    deployment = docs[("Deployment", "e2b-system", "e2b-operator")]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert deployment["spec"]["replicas"] == 3
    assert container["image"] == "reg.example/e2b-operator:1.2.3"
    assert "--namespace=team-a" in container["command"]
    assert "--namespace=team-b" in container["command"]
    assert "--all-namespaces" not in container["command"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["E2B_OPERATOR_METRICS_PORT"] == "9191" and env["E2B_API_KEY_SECRET_KEY"] == "token"
    assert {"name": "metrics", "containerPort": 9191} in container["ports"]
    settings = docs[("ConfigMap", "e2b-system", "e2b-operator-settings")]["data"]
    assert settings["E2B_API_URL"] == "https://api.e2b.example"
    monitor = docs[("ServiceMonitor", "e2b-system", "e2b-operator")]
    service = docs[("Service", "e2b-system", "e2b-operator-metrics")]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert not [k for k in docs if "gateway" in k[2]]
    single = by_key(helm_cli.render("--set", "leaderElection.enabled=false,replicaCount=1"))
    one = single[("Deployment", "e2b-system", "e2b-operator")]["spec"]
    assert one["strategy"] == {"type": "Recreate"} and "affinity" not in one["template"]["spec"]
    assert not [e for e in one["template"]["spec"]["containers"][0]["env"] if "LEASE" in e["name"]]
    assert ("Role", "e2b-system", "e2b-operator-leader-election") not in single
    off = by_key(helm_cli.render("--set", "metrics.enabled=false"))
    pod = off[("Deployment", "e2b-system", "e2b-operator")]["spec"]["template"]["spec"]
    assert {"name": "E2B_OPERATOR_METRICS_PORT", "value": "0"} in pod["containers"][0]["env"]
    assert ("Service", "e2b-system", "e2b-operator-metrics") not in off


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("replicaCount=-1", "at '/replicaCount': minimum: got -1, want 0"),
        ("e2b.apiUrl=ftp://x", "at '/e2b/apiUrl': 'ftp://x' does not match pattern"),
        ("e2b.domain=https://e2b.example.com", "at '/e2b/domain': 'https://e2b.example.com'"),
        ("metrics.port=8080", "at '/metrics/port'"),
        ("watchNamespaces[0]=Team_A", "at '/watchNamespaces/0': 'Team_A' does not match"),
        ("replicas=2", "additional properties 'replicas' not allowed"),
        ("gateway.enabled=maybe", "at '/gateway/enabled': got string, want boolean"),
        ("leaderElection.enabled=false", "replicaCount above 1 needs leaderElection.enabled"),
    ],
)
def test_bad_values_fail_with_the_field(helm_cli: Helm, value: str, says: str) -> None:
    out = helm_cli("template", "x", str(CHART), "--set", value, check=False)
    assert out.returncode != 0 and says in out.stderr, out.stderr


@pytest.fixture(scope="module")
def release(kube: LocalCluster, helm_cli: Helm) -> Iterator[None]:
    yield
    helm_cli("uninstall", RELEASE, "-n", NAMESPACE, check=False)
    kube.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


def _get(kube: LocalCluster, *args: str) -> dict[str, Any] | None:
    out = kube.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


def test_server_dry_run(kube: LocalCluster, helm_cli: Helm) -> None:
    kube.kubectl("create", "namespace", "e2b-helm-dry")
    try:
        for options in ([], ["--set", "metrics.enabled=true,gateway.enabled=false"]):
            text = helm_cli(
                "template", RELEASE, str(CHART), "-n", "e2b-helm-dry", "--include-crds", *options
            ).stdout
            out = kube.kubectl("apply", "--dry-run=server", "-f", "-", input=text, check=False)
            assert out.returncode == 0, out.stderr
            assert "deployment.apps/e2b-operator-helm created (server dry run)" in out.stdout
    finally:
        kube.kubectl("delete", "namespace", "e2b-helm-dry", "--wait=false", check=False)


def test_install_upgrade_uninstall(kube: LocalCluster, helm_cli: Helm, release: None) -> None:
    ns = ("-n", NAMESPACE)
    role = ("--set", f"userClusterRole.name={USER_ROLE}")
    helm_cli("install", RELEASE, str(CHART), *ns, "--create-namespace", *role)
    deployment = _get(kube, "deployment", RELEASE, *ns)
    assert deployment and deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert {"name": "E2B_API_KEY_SECRET", "value": f"{NAMESPACE}/e2b-api-key"} in container["env"]
    for kind, name in [
        ("clusterrole", RELEASE),
        ("clusterrolebinding", RELEASE),
        ("clusterrole", USER_ROLE),
        ("configmap", f"{RELEASE}-settings"),
        ("serviceaccount", RELEASE),
        ("deployment", f"{RELEASE}-gateway"),
        ("service", f"{RELEASE}-gateway"),
        ("service", f"{RELEASE}-metrics"),
        ("role", f"{RELEASE}-leader-election"),
    ]:
        assert _get(kube, kind, name, *ns), (kind, name)
    lease = {"name": "E2B_OPERATOR_LEASE", "value": f"{NAMESPACE}/{RELEASE}"}
    assert lease in container["env"]
    binding = _get(kube, "clusterrolebinding", RELEASE)
    assert binding and binding["subjects"] == [
        {"kind": "ServiceAccount", "name": RELEASE, "namespace": NAMESPACE}
    ]

    upgrade = ("upgrade", RELEASE, str(CHART), *ns, *role)
    helm_cli(*upgrade, "--set", "e2b.domain=e2b.example.com,replicaCount=3,gateway.enabled=false")
    settings = _get(kube, "configmap", f"{RELEASE}-settings", *ns)
    assert settings and settings["data"]["E2B_DOMAIN"] == "e2b.example.com"
    after = _get(kube, "deployment", RELEASE, *ns)
    assert after and after["spec"]["replicas"] == 3
    checksum = "checksum/settings"
    annotations = after["spec"]["template"]["metadata"]["annotations"]
    assert annotations[checksum] != pod["metadata"]["annotations"][checksum]  # rolls the pods
    assert _get(kube, "deployment", f"{RELEASE}-gateway", *ns) is None
    assert _get(kube, "clusterrole", f"{RELEASE}-gateway") is None

    bad = helm_cli(*upgrade, "--set", "replicaCount=two", check=False)
    assert bad.returncode != 0 and "at '/replicaCount': got string, want integer" in bad.stderr
    history = json.loads(helm_cli("history", RELEASE, *ns, "-o", "json").stdout)
    assert [h["revision"] for h in history] == [1, 2]  # the bad value never reached the cluster
    still = _get(kube, "deployment", RELEASE, *ns)
    assert still and still["spec"]["replicas"] == 3

    helm_cli("uninstall", RELEASE, *ns, "--wait")
    for kind, name in [
        ("deployment", RELEASE),
        ("configmap", f"{RELEASE}-settings"),
        ("serviceaccount", RELEASE),
    ]:
        assert _get(kube, kind, name, *ns) is None, (kind, name)
    for kind, name in [
        ("clusterrole", RELEASE),
        ("clusterrolebinding", RELEASE),
        ("clusterrole", USER_ROLE),
    ]:
        assert _get(kube, kind, name) is None, (kind, name)
    assert _get(kube, "crd", "e2bdeployments.e2b.dev")  # helm keeps CRDs (and users' objects)
