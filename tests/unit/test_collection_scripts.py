"""Run each collection main script as a real subprocess, with JSON input via argv and stdin."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import e2b_operator.toolkit.collection as collection

DIR = Path(collection.__file__).parent
ENV = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
ENV["E2B_TEMPLATE_CONFIG"] = "/nonexistent/template.json"  # outside a sandbox: no template
BAD_APP = """import os, sys
import subprocess

API_KEY = "abc123"

def run(cmd, opts=[]):
    # TODO: sanitize
    try:
        return subprocess.run(cmd, shell=True)
    except:
        return eval(cmd) + missing
"""

# script: a config that runs offline, and fields its output must have
CASES = {
    "python_base.py": ({"message": "hi", "data": [1, 2, 3, 4]}, ["message", "stats"]),
    "node_base.js": ({"message": "hi", "data": [1, 2, 3, 4]}, ["message", "stats"]),
    "trading_agent.py": ({"symbols": ["AAPL", "MSFT"]}, ["results", "summary"]),
    "claude_flow_swarm.py": ({"task": "Research. Build; test"}, ["topology", "plan", "agents"]),
    "claude_flow_neural.py": ({"length": 300}, ["test_accuracy", "predictions", "next"]),
    "claude_code_sparc.py": ({"task": "n-th Fibonacci number"}, ["specification", "completion"]),
    "claude_code_reviewer.py": ({"files": {"app.py": BAD_APP}}, ["score", "findings"]),
}


def run(
    script: str,
    config: object = None,
    via: str = "argv",
    raw: str | None = None,
    template: Path | None = None,
):
    """Run a script (with that template.json); returns (exit code, parsed stdout)."""
    text = raw if raw is not None else json.dumps(config)
    interpreter = shutil.which("node") if script.endswith(".js") else sys.executable
    if interpreter is None:
        pytest.skip("node is not installed")
    args = [interpreter, str(DIR / script)] + ([text] if via == "argv" else [])
    proc = subprocess.run(
        args,
        input=text if via == "stdin" else "",
        capture_output=True,
        text=True,
        timeout=120,
        env=ENV | ({"E2B_TEMPLATE_CONFIG": str(template)} if template else {}),
    )
    assert proc.stdout.count("\n") == 1, proc.stdout + proc.stderr  # one JSON document
    return proc.returncode, json.loads(proc.stdout)


@pytest.mark.parametrize("script", sorted(CASES))
def test_argv_and_stdin_give_the_same_deterministic_output(script: str) -> None:
    config, fields = CASES[script]
    code, out = run(script, config, "argv")
    assert code == 0, out
    assert "error" not in out
    for field in fields:
        assert field in out, field
    assert run(script, config, "stdin") == (0, out)
    assert run(script, config, "argv") == (0, out)


@pytest.mark.parametrize("script", sorted(CASES))
@pytest.mark.parametrize("via", ["argv", "stdin"])
@pytest.mark.parametrize("raw", ["{not json", "[1, 2]"])
def test_invalid_input_is_a_json_error(script: str, via: str, raw: str) -> None:
    code, out = run(script, via=via, raw=raw)
    assert code != 0
    assert isinstance(out["error"], str) and out["error"]


@pytest.mark.parametrize("script", ["python_base.py", "node_base.js"])
def test_base_templates_agree_on_stats(script: str) -> None:
    code, out = run(script, {"data": [2, 4, 4, 4, 5, 5, 7, 9]})
    assert code == 0
    stats = out["stats"]
    assert (stats["count"], stats["sum"], stats["mean"], stats["median"]) == (8, 40, 5, 4.5)
    assert (stats["min"], stats["max"]) == (2, 9)
    assert stats["stdev"] == pytest.approx(2.138089935)
    assert run(script, {"data": [1, "x"]})[0] == 1
    assert run(script, {})[1]["received"] == []


def test_trading_agent_indicators_signals_and_backtest() -> None:
    code, out = run("trading_agent.py", {"symbols": ["AAPL", "MSFT", "GOOGL"], "seed": 1})
    assert code == 0
    assert out["data_source"] == "synthetic" and out["execution_mode"] == "paper_trading"
    for result in out["results"].values():
        assert 0 <= result["indicators"]["RSI"] <= 100
        assert set(result["indicators"]["MACD"]) == {"macd", "signal", "histogram"}
        assert set(result["indicators"]["SMA"]) == {"20", "50"}
        bt = result["backtest"]
        assert bt["trades"] == len(bt["trade_log"]) and 0 <= bt["win_rate"] <= 1
        assert bt["pnl"] == pytest.approx(sum(t["pnl"] for t in bt["trade_log"]), abs=0.05)
    assert out["summary"]["total_trades"] > 0
    assert run("trading_agent.py", {"symbols": ["AAPL"], "seed": 2})[1] != out


def test_trading_agent_rsi_signal_carries_risk_params() -> None:
    falling = [100 - i * 0.5 + (0.3 if i % 4 == 0 else 0) for i in range(60)]
    config = {
        "strategy_type": "rsi",
        "prices": {"XYZ": falling},
        "risk_params": {"max_position_size": 0.1, "stop_loss": 0.02},
        "capital": 10_000,
    }
    code, out = run("trading_agent.py", config)
    assert code == 0 and out["data_source"] == "provided"
    result = out["results"]["XYZ"]
    assert result["indicators"]["RSI"] < 30
    [signal] = result["signals"]
    assert signal["action"] == "buy" and signal["reason"] == "RSI oversold"
    assert signal["stop_loss"] == pytest.approx(signal["price"] * 0.98, abs=1e-3)
    assert signal["position_value"] <= 10_000 * 0.1
    assert run("trading_agent.py", {"strategy_type": "astrology"})[0] == 1
    code, out = run("trading_agent.py", {"prices": {"X": [1, 2, 3]}})
    assert code == 1 and "35 bars" in out["results"]["X"]["error"]


@pytest.mark.parametrize(
    ("topology", "edges", "rounds"),
    [("mesh", 20, 1), ("star", 8, 2), ("hierarchical", 8, 3), ("ring", 5, 4)],
)
def test_swarm_topologies_converge(topology: str, edges: int, rounds: int) -> None:
    code, out = run("claude_flow_swarm.py", {"swarm_topology": topology, "max_agents": 5})
    assert code == 0 and out["mode"] == "dry_run"
    assert out["topology"]["agents"] == 5 and len(out["topology"]["edges"]) == edges
    assert out["converged"] and out["rounds_to_converge"] == rounds
    assert len(out["plan"]) == 5 and len(out["synthesis"]) == 5
    assert {a["id"] for a in out["agents"]} == {s["agent"] for s in out["plan"]}


def test_swarm_limits_agents_and_coordination_modes() -> None:
    types = ["researcher", "analyst", "risk_manager", "coder"]
    config = {"agent_types": types, "max_agents": 3, "enable_memory": True}
    out = run("claude_flow_swarm.py", {**config, "coordination_mode": "consensus"})[1]
    assert [a["role"] for a in out["agents"]] == types[:3]
    assert out["consensus"]["reached"] and len(out["memory"]) == 3
    assert out["plan"][0]["role"] == "researcher" and out["plan"][1]["depends_on"] == [1]
    alone = run("claude_flow_swarm.py", {**config, "coordination_mode": "independent"})[1]
    assert not alone["converged"] and alone["rounds"] == [] and alone["synthesis"] == []
    assert run("claude_flow_swarm.py", {"swarm_topology": "blob"})[0] == 1


@pytest.mark.parametrize("model", ["logistic", "perceptron"])
def test_neural_agent_learns_the_pattern(model: str) -> None:
    code, out = run("claude_flow_neural.py", {"model": model})
    assert code == 0 and out["model"] == model
    assert out["test_accuracy"] > out["baseline_accuracy"] + 0.1
    assert sum(out["confusion"].values()) == out["samples"]["test"]
    assert out["next"]["direction"] in ("up", "down")
    assert run("claude_flow_neural.py", {"series": [1, 2, 3]})[0] == 1


@pytest.mark.parametrize(
    "task",
    ["fibonacci", "factorial", "is it prime", "palindrome", "reverse", "fizzbuzz", "gcd"],
)
def test_sparc_generates_code_and_runs_its_tests(task: str) -> None:
    code, out = run("claude_code_sparc.py", {"task": task})
    assert code == 0, out
    assert out["phases"] == [
        "specification",
        "pseudocode",
        "architecture",
        "refinement",
        "completion",
    ]
    first, last = out["refinement"]["iterations"][0], out["refinement"]["iterations"][-1]
    assert first["failed"] and not last["failed"] and last["exit_code"] == 0
    assert out["completion"]["status"] == "complete"
    assert out["completion"]["tests"]["passed"] == out["completion"]["tests"]["tests"] > 0
    assert "def " in out["completion"]["files"]["solution.py"]


def test_sparc_rejects_unsupported_offline_tasks() -> None:
    code, out = run("claude_code_sparc.py", {"task": "build a web browser"})
    assert code == 1 and "fibonacci" in out["error"]
    assert run("claude_code_sparc.py", {})[0] == 1


def test_reviewer_finds_real_problems() -> None:
    files = {"app.py": BAD_APP, "broken.py": "def f(:\n", "x.js": "// FIXME\n"}
    code, out = run("claude_code_reviewer.py", {"files": files})
    assert code == 0 and not out["passed"]
    found = {(f["file"], f["code"], f["line"]) for f in out["findings"]}
    expected = {
        ("app.py", "F401", 1),
        ("app.py", "S105", 4),
        ("app.py", "B006", 6),
        ("app.py", "T101", 7),
        ("app.py", "S602", 9),
        ("app.py", "E722", 10),
        ("app.py", "S307", 11),
        ("app.py", "F821", 11),
        ("broken.py", "E999", 1),
        ("x.js", "T101", 1),
    }
    assert expected <= found
    assert ("app.py", "F401", 2) not in found  # subprocess is used
    assert out["files"]["app.py"]["score"] < out["files"]["x.js"]["score"]


def test_reviewer_scores_clean_code_from_a_directory(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "ok.py").write_text("import os\n\n\ndef cwd():\n    return os.getcwd()\n")
    (tmp_path / "notes.bin").write_bytes(b"\0")
    code, out = run("claude_code_reviewer.py", {"path": str(tmp_path)})
    assert code == 0
    assert out["files_reviewed"] == 1 and out["score"] == 100 and out["passed"]
    assert run("claude_code_reviewer.py", {"path": str(tmp_path / "nope")})[0] == 1


def template_json(tmp_path: Path, name: str) -> Path:
    """The /app/template.json the operator bakes into the collection template `name`."""
    from e2b_operator.reconcile.recipe import template_document
    from e2b_operator.toolkit.collection import TEMPLATES

    path = tmp_path / "template.json"
    path.write_text(json.dumps(template_document(TEMPLATES[name]().build().to_spec())))
    return path


def test_scripts_take_their_section_of_the_template_config(tmp_path: Path) -> None:
    trading = template_json(tmp_path, "trading-agent")
    code, out = run("trading_agent.py", {}, template=trading)
    assert code == 0 and sorted(out["results"]) == ["AAPL", "GOOGL", "MSFT"]
    assert out["risk_params"]["take_profit"] == 0.04
    code, out = run("trading_agent.py", {"symbols": ["TSLA"]}, template=trading)
    assert sorted(out["results"]) == ["TSLA"]  # the run's input overrides the template
    swarm = template_json(tmp_path, "claude-flow-swarm")
    config = json.loads(swarm.read_text())
    config["claude_flow"] |= {
        "swarm_topology": "ring",
        "agent_types": ["researcher", "analyst"],
        "hooks": {"pre-task": "npx claude-flow@alpha hooks pre-task"},
    }
    swarm.write_text(json.dumps(config))
    code, out = run("claude_flow_swarm.py", {"task": "Research. Build"}, template=swarm)
    assert code == 0 and out["topology"]["type"] == "ring", out["topology"]
    assert [a["role"] for a in out["agents"]] == ["researcher", "analyst"]
    assert out["hooks"] == {  # no claude-flow on this host, no key: npx is not tried
        "pre-task": {
            "command": "npx claude-flow@alpha hooks pre-task",
            "status": "skipped (claude-flow not installed, dry run)",
        }
    }
    config = json.loads(trading.read_text())
    config["claude_code"] = {"linters": ["pyflakes"], "phases": ["specification", "completion"]}
    config["custom_config"] = {"message": "from the template"}
    trading.write_text(json.dumps(config))
    code, out = run("claude_code_reviewer.py", {"files": {"a.py": BAD_APP}}, template=trading)
    assert out["linters"] == ["pyflakes"] and {f["code"] for f in out["findings"]} <= {
        "F401",
        "F821",
        "S105",
    }
    code, out = run("claude_code_sparc.py", {"task": "n-th Fibonacci number"}, template=trading)
    assert code == 0 and out["phases"] == ["specification", "completion"]
    assert "pseudocode" not in out
    for script in ("python_base.py", "node_base.js"):
        code, out = run(script, {}, template=trading)
        assert out["reply"] == "Received: from the template", script


def test_seed_hooks_map_onto_the_installed_claude_flow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(DIR))
    from claude_flow_swarm import hook_command

    task, cli = "Research the market; test it", "/app/node_modules/.bin/claude-flow"
    assert hook_command("npx claude-flow@alpha hooks pre-task", task, cli) == (
        f"{cli} hooks pre-task --description 'Research the market; test it'"
    )
    assert hook_command("npx claude-flow@alpha hooks pre-task -d mine", task, cli) == (
        f"{cli} hooks pre-task -d mine"
    )
    assert hook_command("npx claude-flow@alpha hooks post-task", task, cli) == (
        f"{cli} hooks post-task"
    )
    assert hook_command("echo done", task, cli) == "echo done"
