"""manifests/monitoring against a real kube-apiserver with the Prometheus Operator's own
ServiceMonitor CRD (from its Go module, fetched once through the Go module proxy into the
module cache): the ServiceMonitors pass the CRD's schema, and a broken one does not."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from e2b_operator.controlplane.cluster import LocalCluster

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
MODULE = "github.com/prometheus-operator/prometheus-operator@v0.85.0"
CRD = "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"


def servicemonitor_crd() -> Path:
    """The CRD file from the module cache (`go mod download`: keyed by version, offline once
    it is there)."""
    if shutil.which("go") is None:
        pytest.skip("Go is not installed: the ServiceMonitor CRD comes from its Go module")
    out = subprocess.run(
        ["go", "mod", "download", "-json", MODULE],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
        cwd="/",
    )
    return Path(json.loads(out.stdout)["Dir"]) / CRD


@pytest.fixture(scope="module")
def monitoring_crds(kube: LocalCluster) -> Iterator[None]:
    """The CRD installed, and e2b-system existing (created here only if missing)."""
    kube.install_crds(servicemonitor_crd())
    created = kube.kubectl("get", "namespace", "e2b-system", check=False).returncode != 0
    if created:
        kube.kubectl("create", "namespace", "e2b-system")
    yield
    if created:
        kube.kubectl("delete", "namespace", "e2b-system", "--timeout=120s", check=False)


def test_monitoring_manifests_pass_the_servicemonitor_schema(
    kube: LocalCluster, monitoring_crds: None
) -> None:
    out = kube.kubectl("apply", "--dry-run=server", "-k", str(ROOT / "manifests/monitoring"))
    text = out.stdout + out.stderr
    for name in ("servicemonitor.monitoring.coreos.com/e2b-operator ", "e2b-operator-gateway "):
        assert name in text, text
    assert "configmap/e2b-operator-dashboard" in text


def test_a_broken_servicemonitor_is_refused(kube: LocalCluster, monitoring_crds: None) -> None:
    monitor = next(
        yaml.safe_load_all((ROOT / "manifests/monitoring/servicemonitor.yaml").read_text())
    )
    monitor["spec"]["endpoints"][0]["interval"] = "every minute"
    out = kube.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=json.dumps(monitor), check=False
    )
    assert out.returncode != 0 and "interval" in out.stderr, out.stderr
