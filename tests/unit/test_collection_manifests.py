"""manifests/templates/ is what the collection generator writes, and every manifest is valid."""

from pathlib import Path

import yaml

from e2b_operator import api
from e2b_operator.toolkit.collection import TEMPLATES, render, script, write
from e2b_operator.toolkit.collection.__main__ import main

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "manifests" / "templates"
PACKAGES = {  # what the seed's descriptions promise, installed at build
    "python-base": (["numpy", "pandas"], []),
    "node-base": ([], ["lodash", "axios", "dayjs", "zod"]),
    "trading-agent": (["numpy", "pandas"], []),
    "claude-flow-swarm": ([], []),
    "claude-flow-neural": ([], []),
    "claude-code-sparc": ([], ["@anthropic-ai/claude-code"]),
    "claude-code-reviewer": (["pyflakes", "mccabe", "bandit"], ["@anthropic-ai/claude-code"]),
}
SCRIPTS = {
    "python-base": "python_base.py",
    "node-base": "node_base.js",
    "trading-agent": "trading_agent.py",
    "claude-flow-swarm": "claude_flow_swarm.py",
    "claude-flow-neural": "claude_flow_neural.py",
    "claude-code-sparc": "claude_code_sparc.py",
    "claude-code-reviewer": "claude_code_reviewer.py",
}


def test_committed_manifests_are_up_to_date() -> None:
    rendered = render()
    on_disk = {p.name: p.read_text() for p in COMMITTED.glob("*.yaml")}
    assert on_disk == rendered, "manifests/templates/ is stale: run `make manifests`"
    assert render() == rendered  # deterministic


def test_every_seed_template_is_a_valid_manifest() -> None:
    assert set(TEMPLATES) == set(SCRIPTS)
    types = set()
    for name, filename in SCRIPTS.items():
        manifest = yaml.safe_load(render()[f"{name}.yaml"])
        assert api.problems("E2BTemplate", manifest) == [], name
        assert manifest["metadata"]["name"] == name
        spec = api.E2BTemplateSpec.from_wire(manifest["spec"])
        assert spec.files.main_script == script(filename)
        if filename.endswith(".py"):  # the helper module its imports need, beside it
            assert spec.files.modules == {"agent_io.py": script("agent_io.py")}
        assert spec.hooks and spec.hooks.health_check.startswith("test -f /app/main.")
        req = spec.requirements
        assert (req.python_packages, req.node_packages) == PACKAGES[name] and spec.category
        types.add(spec.type)
    assert len(types) == 7


def test_kustomization_lists_every_template() -> None:
    kustomization = yaml.safe_load(render()["kustomization.yaml"])
    assert kustomization["resources"] == [f"{name}.yaml" for name in TEMPLATES]


def test_generator_writes_and_prunes(tmp_path: Path, capsys) -> None:
    stale = tmp_path / "old-template.yaml"
    stale.write_text(render()["python-base.yaml"])
    mine = tmp_path / "mine.yaml"
    mine.write_text("kind: Keep\n")
    assert main([str(tmp_path)]) == 0
    assert not stale.exists() and mine.exists()
    assert {p.name for p in tmp_path.glob("*.yaml")} == set(render()) | {"mine.yaml"}
    assert "wrote" in capsys.readouterr().out
    assert main([]) == 2
    assert [p.name for p in write(tmp_path)] == list(render())
