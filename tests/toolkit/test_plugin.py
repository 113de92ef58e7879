"""Every kubectl-e2b command against the real apiserver + operator: through the executable for
its entry point, help and exit codes, and through ``main()`` in this process for the rest (the
same code without an interpreter start per command: some 2 s of imports, more on a busy host)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from e2b_operator.controlplane.cluster import LocalCluster
from e2b_operator.toolkit import plugin

pytestmark = pytest.mark.cluster
PLUGIN = str(Path(sys.executable).parent / "kubectl-e2b")


def e2b(*args: str, kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    return subprocess.run(
        [PLUGIN, *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """``kubectl e2b ARGS`` as ``main()`` in this process, its output captured like e2b()'s."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = plugin.main(list(args))
        except SystemExit as exc:  # argparse: --help, usage errors
            code = exc.code if isinstance(exc.code, int) else 1
    return subprocess.CompletedProcess([PLUGIN, *args], code, out.getvalue(), err.getvalue())


def ok(*args: str) -> str:
    out = run(*args)
    assert out.returncode == 0, out.stderr
    return out.stdout


def one_line_error(out: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), out.stderr
    for needle in needles:
        assert needle in lines[-1], lines[-1]


def test_help_everywhere() -> None:
    commands = [
        [],
        ["templates"],
        ["templates", "list"],
        ["templates", "search"],
        ["templates", "show"],
        ["templates", "new"],
        ["deploy"],
        ["exec"],
        ["logs"],
        ["scale"],
        ["status"],
        ["health"],
        ["stats"],
    ]
    for cmd in commands:
        out = (run if cmd else e2b)(*cmd, "--help")  # the executable's own once
        assert out.returncode == 0 and "usage: kubectl e2b" in out.stdout, cmd


def test_new_scaffolds_through_the_builder() -> None:
    manifest = yaml.safe_load(
        ok("templates", "new", "my-agent", "--type", "trading", "--strategy", "momentum")
    )
    assert manifest["kind"] == "E2BTemplate" and manifest["metadata"]["name"] == "my-agent"
    assert manifest["spec"]["tradingAgent"]["strategyType"] == "momentum"
    assert manifest["spec"]["files"]["mainScript"]
    as_json = json.loads(
        ok("templates", "new", "swarm", "--type", "claude-flow", "--agents", "a,b", "-o", "json")
    )
    assert as_json["spec"]["claudeFlow"]["agentTypes"] == ["a", "b"]


def test_unreachable_cluster_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
    )
    one_line_error(e2b("templates", "list", kubeconfig=config), "cannot reach the Kubernetes API")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    one_line_error(run("stats"), "no kubeconfig")


def test_every_command(kube: LocalCluster, namespace: str, operator) -> None:
    ns = ("-n", namespace)
    # templates: new --apply, list, search, show
    ok("templates", "new", "py", "--type", "python", "--apply", *ns)
    ok("templates", "new", "trader", "--type", "trading", "--strategy", "momentum", "--apply", *ns)
    listed = ok("templates", "list", *ns)
    assert listed.splitlines()[0].split()[:4] == ["NAME", "TYPE", "CATEGORY", "PHASE"]
    assert "py" in listed and "trader" in listed
    found = json.loads(ok("templates", "search", "momentum", "-o", "json", *ns))
    assert [t["name"] for t in found] == ["trader"]
    shown = yaml.safe_load(ok("templates", "show", "py", *ns))
    assert shown["spec"]["type"] == "pythonBase"
    one_line_error(e2b("templates", "show", "nope", *ns), "template 'nope' not found")
    # deploy (waits, progress on stderr)
    out = e2b(
        "deploy",
        "py",
        "--name",
        "web",
        "--replicas",
        "2",
        "--env",
        "MODE=test",
        "--config",
        '{"greeting": "hi"}',
        "-o",
        "json",
        *ns,
    )
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["deployment"] == "web" and len(info["sandbox_ids"]) == 2
    assert "deployment web:" in out.stderr  # progress while waiting
    # exec: streams the script's output; data with -o json
    out = run("exec", "web", "--input", '{"message": "hello"}', *ns)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["reply"] == "Received: hello"
    assert "Succeeded" in out.stderr  # phase changes as polled (fast runs skip Running)
    result = json.loads(
        ok("exec", "--template", "py", "--input", '{"message": "x"}', "-o", "json", *ns)
    )
    assert result["status"] == "success" and result["result"]["message"] == "x"
    out = run("exec", "web", "--sandbox", info["sandbox_ids"][1], "-o", "json", *ns)
    assert out.returncode == 0, (
        out.stderr + kube.kubectl("-n", namespace, "get", "e2bd", "web", "-o", "yaml").stdout
    )
    pinned = json.loads(out.stdout)
    assert pinned["sandbox_id"] == info["sandbox_ids"][1]
    assert kube.kubectl("-n", namespace, "get", "e2bx", "-o", "name").stdout.count("\n") == 3
    one_line_error(run("exec", "web", "--input", "{not json", *ns), "--input is not valid JSON")
    one_line_error(run("exec", "nope", *ns), "deployment 'nope' not found")
    one_line_error(run("exec", "--template", "nope", *ns), "template 'nope' not found")
    one_line_error(run("exec", *ns), "exactly one")
    # scale, status, health, stats
    scaled = json.loads(ok("scale", "web", "1", "-o", "json", *ns))
    assert scaled["ready"] == "1/1" and len(scaled["sandbox_ids"]) == 1
    assert "web" in ok("status", "web", *ns)
    status = json.loads(ok("status", scaled["sandbox_id"], "-o", "json", *ns))
    assert status["deployment"] == "web"
    health = json.loads(ok("health", scaled["sandbox_id"], "-o", "json", *ns))
    assert health["status"] == "healthy"
    assert "status: healthy" in ok("health", "web", *ns)
    one_line_error(run("health", "sbx-missing", *ns), "no deployment or sandbox 'sbx-missing'")
    one_line_error(run("status", "nope", *ns), "no deployment or sandbox 'nope'")
    one_line_error(run("scale", "nope", "2", *ns), "deployment 'nope' not found")
    stats = json.loads(ok("stats", "-o", "json", *ns))
    # three runs and the health check of one sandbox (its hook runs as an execution)
    assert stats["total_deployments"] == 1 and stats["executions"]["succeeded"] == 4
    assert "total_deployments: 1" in ok("stats", *ns)
    # a failing script: its stderr, and a one-line error with a non-zero exit
    ok("templates", "new", "bad", "--apply", *ns)  # replaced below with a crashing script
    # A merge patch: a replace races the operator's own writes to the fresh object (409).
    crash = {"spec": {"type": "pythonBase", "files": {"mainScript": "raise SystemExit('boom')"}}}
    kube.kubectl("-n", namespace, "patch", "e2bt", "bad", "--type=merge", "-p", json.dumps(crash))
    out = run("exec", "--template", "bad", *ns)
    assert "boom" in out.stderr
    one_line_error(out, "exited 1: boom")
    one_line_error(run("deploy", "nope", *ns), "template 'nope' not found")
    one_line_error(run("deploy", "py", "--replicas", "-1", *ns), "spec.replicas")
