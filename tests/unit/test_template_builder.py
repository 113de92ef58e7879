"""TemplateBuilder: the seed's examples, translated, and validation that is the CRD's own."""

import pytest
import yaml

from e2b_operator import api
from e2b_operator.api.crds import render
from e2b_operator.api.layout import health_check, main_command, main_script_path
from e2b_operator.toolkit import (
    TemplateBuilder,
    TemplateConfig,
    TemplateFiles,
    TemplateHooks,
    TemplateMetadata,
    TemplateRequirements,
    TemplateType,
)
from e2b_operator.toolkit.mainscripts import script
from seed import MOMENTUM, RESEARCH_AGENTS, RESEARCH_SWARM

SCRIPT = """import json
import sys

config = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
print(json.dumps({"symbol": config.get("symbol", "AAPL")}))
"""


def test_creating_custom_templates() -> None:
    builder = TemplateBuilder.create_python_template(
        "My Custom Agent", "Custom trading agent with specific indicators"
    )
    builder.set_requirements(python_packages=["yfinance", "ta", "numpy"], memory_mb=2048)
    builder.set_main_script(SCRIPT)
    template = builder.build()
    assert isinstance(template, TemplateConfig)
    assert template.template_type is TemplateType.PYTHON_BASE
    assert template.metadata.name == "My Custom Agent"
    assert template.requirements.memory_mb == 2048
    spec = template.to_spec()
    assert isinstance(spec, api.E2BTemplateSpec) and spec.display_name == "My Custom Agent"
    assert TemplateConfig.from_spec(spec) == template
    assert template.requirements.python_packages == ["yfinance", "ta", "numpy"]
    assert template.files.main_script == SCRIPT
    assert template.hooks and template.hooks.health_check == health_check("python3.10")


def test_simple_data_processor_chain() -> None:
    template = (
        TemplateBuilder()
        .set_type(TemplateType.PYTHON_BASE)
        .set_metadata("Data Processor", "Process CSV data")
        .set_requirements(python_packages=["pandas", "numpy"], env_vars={"DEBUG": "true"})
        .set_main_script(SCRIPT)
        .add_module("helpers/io.py", "def load():\n    return []\n")
        .add_file("settings.json", "{}", "configs")
        .set_custom_config({"input_file": "/tmp/data.csv"}, delimiter=",")
        .build()
    )
    assert template.requirements.env == [api.TemplateEnvVar(name="DEBUG", value="true")]
    assert template.files.modules == {"helpers/io.py": "def load():\n    return []\n"}
    assert template.files.configs == {"settings.json": "{}"}
    assert template.custom_config == {"input_file": "/tmp/data.csv", "delimiter": ","}


def test_trading_agent_configuration() -> None:
    builder = TemplateBuilder.create_trading_template("Momentum Strategy", "momentum")
    builder.set_trading_agent_config(**MOMENTUM).set_main_script(SCRIPT)
    trading = builder.build().trading_agent
    assert trading is not None and trading.symbols == ["AAPL", "GOOGL", "MSFT"]
    assert trading.risk_params == {"max_position_size": 0.1, "stop_loss": 0.02}
    assert trading.backtest_enabled and trading.data_sources == ["yfinance", "alpaca"]
    manifest = builder.to_manifest()
    assert manifest["metadata"] == {"name": "momentum-strategy"}
    assert manifest["spec"]["tradingAgent"]["riskParams"]["stop_loss"] == 0.02


def test_claude_flow_swarm_configuration() -> None:
    builder = TemplateBuilder.create_claude_flow_template(
        "Research Swarm", agent_types=RESEARCH_AGENTS
    )
    builder.set_claude_flow_config(**RESEARCH_SWARM).set_main_script(SCRIPT)
    flow = builder.build().claude_flow
    assert flow is not None and flow.max_agents == 6 and flow.enable_neural
    assert flow.agent_types == ["researcher", "analyst", "synthesizer"]
    assert flow.hooks["pre-task"] == "npx claude-flow@alpha hooks pre-task"
    many = TemplateBuilder.create_claude_flow_template("Big", [f"a{i}" for i in range(7)])
    assert many.set_main_script(SCRIPT).build().claude_flow.max_agents == 7


def test_lifecycle_hooks_and_node_and_claude_code_presets() -> None:
    hooks = (
        TemplateBuilder.create_node_template("Web", "A node app")
        .set_main_script("console.log('{}')\n")
        .set_hooks(
            pre_install="apt-get update && apt-get install -y curl",
            post_install="pip install --upgrade pip",
            pre_start="echo 'Starting application...'",
            cleanup="rm -rf /tmp/cache/*",
        )
        .to_manifest("web")["spec"]
    )
    assert hooks["requirements"]["runtime"] == "node20"
    assert hooks["hooks"] == {
        "preInstall": "apt-get update && apt-get install -y curl",
        "postInstall": "pip install --upgrade pip",
        "preStart": "echo 'Starting application...'",
        "healthCheck": "test -f /app/main.js && node -e 'JSON.parse(\"{}\")'",
        "cleanup": "rm -rf /tmp/cache/*",
    }
    sparc = TemplateBuilder.create_claude_code_template("Dev").set_main_script(SCRIPT).build()
    assert sparc.template_type is TemplateType.CLAUDE_CODE_SPARC
    assert sparc.claude_code.sparc_mode == "full"
    review = TemplateBuilder.create_claude_code_template("Rev", sparc_mode="review")
    reviewer = review.set_main_script(SCRIPT).build()
    assert reviewer.template_type is TemplateType.CLAUDE_CODE_REVIEWER
    assert reviewer.claude_code.linters


def test_invalid_chain_lists_every_problem() -> None:
    builder = (
        TemplateBuilder()
        .set_type(TemplateType.TRADING_AGENT)
        .set_metadata("Broken", "Everything wrong")
        .set_requirements(memory_mb=64, cpu=4)
        .set_claude_flow_config(agent_types=["a", "b", "c"], max_agents=2)
        .add_file("x.bin", "", "binaries")
    )
    problems = builder.validate()
    expected = [
        "spec.requirements.memoryMB: Input should be greater than or equal to 128",
        "spec.requirements.cpu: unknown field",
        "spec.files.mainScript: required field is missing",
        "spec.files.binaries: unknown field",
        "spec.tradingAgent: type tradingAgent needs a tradingAgent section",
        "spec.claudeFlow.agentTypes: agentTypes has more entries than maxAgents",
    ]
    for line in expected:
        assert any(p.startswith(line) for p in problems), (line, problems)
    assert len(problems) == len(expected)
    with pytest.raises(ValueError) as err:
        builder.build()
    assert all(p in str(err.value) for p in problems)
    with pytest.raises(ValueError):
        builder.to_manifest("broken")


def test_validation_is_the_crds_own() -> None:
    """A CEL-only rule reaches the builder with the CRD's own message."""
    crd = yaml.safe_load(render()["e2b.dev_e2btemplates.yaml"].split("---\n", 1)[1])
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    messages = {v["message"] for v in schema["x-kubernetes-validations"]}
    builder = (
        TemplateBuilder.create_claude_flow_template("Neural", ["learner"])
        .set_type(TemplateType.CLAUDE_FLOW_NEURAL)
        .set_main_script(SCRIPT)
    )
    [problem] = builder.validate()
    assert problem.split(": ", 1)[1] in messages
    manifest = {"apiVersion": api.API_VERSION, "kind": "E2BTemplate", "spec": builder.draft()}
    assert api.problems("E2BTemplate", manifest) == [problem]
    assert builder.set_claude_flow_config(enable_neural=True).validate() == []


def test_yaml_round_trip_and_names() -> None:
    builder = TemplateBuilder.create_python_template("Yaml Agent", "d").set_main_script(SCRIPT)
    text = builder.to_yaml(namespace="team-a", labels={"tier": "gold"})
    assert "mainScript: |\n" in text
    manifest = yaml.safe_load(text)
    assert manifest == builder.to_manifest("yaml-agent", "team-a", {"tier": "gold"})
    assert manifest["metadata"]["namespace"] == "team-a"
    assert api.problems("E2BTemplate", manifest) == []
    assert list(manifest["spec"]) == ["type", "displayName", "description", "files", "hooks"]
    with pytest.raises(ValueError, match="invalid template name"):
        builder.to_manifest("Not_A_Name")


def test_layout() -> None:
    assert str(main_script_path("python3.11")) == "/app/main.py"
    assert main_command("node20") == ["node", "/app/main.js"]


PRESETS = {
    "python_base.py": lambda: TemplateBuilder.create_python_template("P", "d"),
    "node_base.js": lambda: TemplateBuilder.create_node_template("N", "d"),
    "trading_agent.py": lambda: TemplateBuilder.create_trading_template("T", "momentum"),
    "claude_flow_swarm.py": lambda: TemplateBuilder.create_claude_flow_template("F", ["a"]),
    "claude_code_sparc.py": lambda: TemplateBuilder.create_claude_code_template("S"),
    "claude_code_reviewer.py": lambda: TemplateBuilder.create_claude_code_template(
        "R", sparc_mode="review"
    ),
}


@pytest.mark.parametrize("filename", sorted(PRESETS))
def test_every_preset_is_a_complete_template_with_its_collection_script(filename: str) -> None:
    builder = PRESETS[filename]()
    assert builder.validate() == []
    template = builder.build()
    assert template.files.main_script == script(filename)
    assert ("agent_io.py" in template.files.modules) == filename.endswith(".py")
    assert builder.set_main_script("print(1)").build().files.main_script == "print(1)"


def test_seed_model_names_build_the_same_spec_as_the_builder() -> None:
    config = TemplateConfig(
        template_type=TemplateType.PYTHON_BASE,
        metadata=TemplateMetadata(name="Data Processor", description="Process CSV data"),
        requirements=TemplateRequirements(
            python_packages=["pandas"], memory_mb=2048, env_vars={"DEBUG": "1"}
        ),
        files=TemplateFiles(main_script=SCRIPT),
        hooks=TemplateHooks(cleanup="rm -rf /tmp/cache/*"),
    )
    assert config.requirements.env_vars == {"DEBUG": "1"}
    built = (
        TemplateBuilder()
        .set_type(TemplateType.PYTHON_BASE)
        .set_metadata("Data Processor", "Process CSV data")
        .set_requirements(python_packages=["pandas"], memory_mb=2048, env_vars={"DEBUG": "1"})
        .set_main_script(SCRIPT)
        .set_hooks(cleanup="rm -rf /tmp/cache/*")
        .build()
    )
    assert built == config and built.to_spec() == config.to_spec()
    assert config.wire()["requirements"]["env"] == [{"name": "DEBUG", "value": "1"}]
    bad = config.model_copy(update={"template_type": TemplateType.TRADING_AGENT})
    with pytest.raises(ValueError, match=r"spec\.tradingAgent: type tradingAgent needs"):
        bad.to_spec()


def test_validate_lists_only_what_the_user_set_or_must_set() -> None:
    assert TemplateBuilder().validate() == [
        "spec.type: required field is missing; set it",
        "spec.files: required field is missing; set it",
    ]
    flow = TemplateBuilder().set_type(TemplateType.CLAUDE_FLOW_SWARM).set_main_script("x")
    assert flow.validate() == [
        "spec.claudeFlow: types claudeFlowSwarm and claudeFlowNeural need a claudeFlow section"
    ]
