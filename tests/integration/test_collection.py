"""The seed's seven templates, built from manifests/templates/ into e2b-local and run there."""

from __future__ import annotations

import json
from pathlib import Path

from support import wait_condition, wait_for
from unit.test_collection_scripts import CASES

COLLECTION = Path(__file__).resolve().parents[2] / "manifests" / "templates"


def test_every_collection_template_builds_and_runs_offline(kube, namespace, operator) -> None:
    kube.kubectl("-n", namespace, "apply", "-k", str(COLLECTION))
    for script, (config, _fields) in CASES.items():
        name = Path(script).stem.replace("_", "-")
        wait_condition(kube, namespace, "e2bt", name, "Ready", 180, operator.tail)
        run = {
            "apiVersion": "e2b.dev/v1alpha1",
            "kind": "E2BExecution",
            "metadata": {"name": f"run-{name}"},
            "spec": {"templateRef": {"name": name}, "input": config, "timeoutSeconds": 120},
        }
        kube.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(run))
    for script, (_config, fields) in CASES.items():
        name = f"run-{Path(script).stem.replace('_', '-')}"

        def finished(name=name):
            out = kube.kubectl("-n", namespace, "get", "e2bx", name, "-o", "json").stdout
            obj = json.loads(out)
            return obj.get("status", {}).get("phase") in ("Succeeded", "Failed") and obj

        status = wait_for(finished, 180, f"{name} finished", operator.tail)["status"]
        assert status["phase"] == "Succeeded", (name, status.get("stderrTail"), status)
        assert set(fields) <= set(status["result"]), (name, status["result"])
