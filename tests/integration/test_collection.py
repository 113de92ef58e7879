"""The seed's seven templates, built from manifests/templates/ into e2b-local and run there.

Each run uses the template's offline path (synthetic data, dry-run agents, no API key) and is
checked on the content of its result: the packages the template installs are there, and the
script took its section of /app/template.json.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from e2b_operator.toolkit.collection.catalog import CLAUDE_FLOW_VERSION
from support import wait_condition, wait_for

COLLECTION = Path(__file__).resolve().parents[2] / "manifests" / "templates"
UNUSED_IMPORT = "import os\nimport json\n\nprint(json.dumps({}))\n"
COMMON_NPM = ["axios", "dayjs", "lodash", "zod"]
SWARM = ["coordinator", "researcher", "coder", "analyst", "tester"]


def claude_code_installed(result: dict[str, Any]) -> bool:
    return "(Claude Code)" in (result.get("claude_code") or "")


def claude_flow_installed(result: dict[str, Any]) -> bool:
    return CLAUDE_FLOW_VERSION in (result.get("claude_flow") or "")


def claude_flow_hooks_ran(result: dict[str, Any]) -> bool:
    """The seed's hooks ran through the real CLI: pre-task suggested agents for the task."""
    hooks = result.get("hooks") or {}
    return (
        hooks.get("pre-task", {}).get("exit_code") == 0
        and "Suggested Agents" in hooks["pre-task"]["output"]
        and hooks.get("post-task", {}).get("exit_code") == 0
    )


# template: (input, check of the result)
RUNS: dict[str, tuple[dict[str, Any], Callable[[dict[str, Any]], bool]]] = {
    "python-base": (
        {"message": "hi", "data": [1, 2, 3, 4]},
        lambda r: r["reply"] == "Received: hi" and r["pandas"]["describe"]["mean"] == 2.5,
    ),
    "node-base": (
        {"message": "hi", "data": [1, 2, 3, 4]},
        lambda r: sorted(r["packages"]) == COMMON_NPM and r["stats"]["mean"] == 2.5,
    ),
    "trading-agent": (
        {},  # the symbols, risk and strategy come from the template's tradingAgent section
        lambda r: (
            sorted(r["results"]) == ["AAPL", "GOOGL", "MSFT"]
            and sorted(r["libraries"]) == ["numpy", "pandas"]
            and r["summary"]["failed"] == 0
            and r["risk_params"]["take_profit"] == 0.04
            and all("RSI" in s["indicators"] for s in r["results"].values())
        ),
    ),
    "claude-flow-swarm": (
        {"task": "Research the market. Build a strategy; test it"},
        lambda r: (
            [a["role"] for a in r["agents"]] == SWARM
            and r["topology"]["type"] == "mesh"
            and r["converged"]
            and claude_flow_installed(r)
            and claude_flow_hooks_ran(r)
        ),
    ),
    "claude-flow-neural": (
        {"length": 300},
        lambda r: (
            r["test_accuracy"] > r["baseline_accuracy"]
            and r["next"]["direction"] in ("up", "down")
            and claude_flow_installed(r)
        ),
    ),
    "claude-code-sparc": (
        {"task": "Write a function that returns the n-th Fibonacci number"},
        lambda r: (
            r["completion"]["status"] == "complete"
            and r["completion"]["tests"]["failed"] == []
            and claude_code_installed(r)
        ),
    ),
    "claude-code-reviewer": (
        {"files": {"app.py": UNUSED_IMPORT}},
        lambda r: (
            r["analysers"]["pyflakes"] == "pyflakes"
            and r["analysers"]["mccabe"] == "mccabe"
            and r["analysers"]["bandit"] == "bandit"
            and any(
                f["code"] == "F401" and f["message"] == "'os' imported but unused"
                for f in r["findings"]
            )
            and claude_code_installed(r)
        ),
    ),
}


def test_every_collection_template_builds_and_runs_offline(kube, namespace, operator) -> None:
    kube.kubectl("-n", namespace, "apply", "-k", str(COLLECTION))
    for name, (config, _check) in RUNS.items():
        wait_condition(kube, namespace, "e2bt", name, "Ready", 600, operator.tail)
        run = {
            "apiVersion": "e2b.dev/v1alpha1",
            "kind": "E2BExecution",
            "metadata": {"name": f"run-{name}"},
            "spec": {"templateRef": {"name": name}, "input": config, "timeoutSeconds": 120},
        }
        kube.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(run))
    for name, (_config, check) in RUNS.items():

        def finished(name: str = f"run-{name}") -> dict[str, Any] | bool:
            out = kube.kubectl("-n", namespace, "get", "e2bx", name, "-o", "json").stdout
            obj = json.loads(out)
            return obj.get("status", {}).get("phase") in ("Succeeded", "Failed") and obj

        status = wait_for(finished, 180, f"run-{name} finished", operator.tail)["status"]
        assert status["phase"] == "Succeeded", (name, status.get("stderrTail"), status)
        assert check(status["result"]), (name, status["result"])
