"""manifests/monitoring: the dashboard queries metrics that exist, and the ServiceMonitors
select the Services and ports that serve them (no Prometheus Operator CRDs here: checked
structurally against manifests/install)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import REGISTRY

import e2b_operator.gateway.metrics
import e2b_operator.metrics  # noqa: F401  (the modules that define the metrics)
from e2b_local import prom as local_prom

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "manifests" / "monitoring"
METRIC = re.compile(r"\b(e2b_(?:operator|local)_[a-z0-9_]+)")


def ours() -> tuple[set[str], set[str]]:
    """(every sample name our metrics expose, their family names)."""
    collected = [*REGISTRY.collect(), *local_prom.SandboxStates(dict).collect()]
    families = [f for f in collected if METRIC.fullmatch(f.name)]
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    samples = {f.name + s for f in families for s in suffixes.get(f.type, ("",))}
    return samples, {f.name for f in families}


def dashboard() -> dict[str, Any]:
    return json.loads((MONITORING / "grafana-dashboard.json").read_text())


def exprs(dash: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expression) of every panel target and templating query."""
    found = [
        (p["title"], t["expr"]) for p in dash["panels"] if p["type"] != "row" for t in p["targets"]
    ]
    found += [
        ("$" + v["name"], v["definition"]) for v in dash["templating"]["list"] if "definition" in v
    ]
    return found


def test_every_panel_queries_metrics_that_exist() -> None:
    samples, _ = ours()
    for title, expr in exprs(dashboard()):
        names = METRIC.findall(expr)
        assert names, f"{title}: {expr} queries none of our metrics"
        assert set(names) <= samples, f"{title}: unknown {set(names) - samples}"


def test_every_metric_has_a_panel() -> None:
    _, families = ours()
    used = {m for _, expr in exprs(dashboard()) for m in METRIC.findall(expr)}
    unused = {f for f in families if not any(u.startswith(f) for u in used)}
    assert not unused, f"no panel shows {unused}"


def test_dashboard_is_importable() -> None:
    dash = dashboard()
    assert dash["uid"] and dash["title"] and dash["schemaVersion"] >= 36
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        pos = p["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24 and pos["h"] > 0, p["title"]
        if p["type"] != "row":
            refs = [t["refId"] for t in p["targets"]]
            assert refs and len(refs) == len(set(refs)), p["title"]
            assert p["datasource"]["uid"] == "${datasource}", p["title"]


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_service_monitors_select_the_services_that_serve_metrics() -> None:
    installed = [d for f in (ROOT / "manifests/install").glob("*.yaml") for d in _docs(f)]
    services = [d for d in installed if d["kind"] == "Service"]
    deployments = {d["metadata"]["name"]: d for d in installed if d["kind"] == "Deployment"}
    monitors = _docs(MONITORING / "servicemonitor.yaml")
    assert {m["metadata"]["name"] for m in monitors} == {"e2b-operator", "e2b-operator-gateway"}
    for monitor in monitors:
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert monitor["kind"] == "ServiceMonitor"
        spec = monitor["spec"]
        wanted = spec["selector"]["matchLabels"]
        (service,) = [
            s
            for s in services
            if s["metadata"]["namespace"] in spec["namespaceSelector"]["matchNames"]
            and wanted.items() <= s["metadata"].get("labels", {}).items()
        ]
        for endpoint in spec["endpoints"]:
            assert endpoint["path"] == "/metrics"
            (port,) = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
            # The Service's targetPort is a container port of the pods it selects.
            pods = [
                d
                for d in deployments.values()
                if service["spec"]["selector"].items()
                <= d["spec"]["template"]["metadata"]["labels"].items()
            ]
            (container,) = pods[0]["spec"]["template"]["spec"]["containers"]
            assert port["targetPort"] in {p["name"] for p in container["ports"]}


def test_operator_metrics_port_matches_its_default() -> None:
    deployment = yaml.safe_load((ROOT / "manifests/install/deployment.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    from e2b_operator.handlers.settings import Settings

    assert ports["metrics"] == Settings().metrics_port
