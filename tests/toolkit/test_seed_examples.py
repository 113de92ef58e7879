"""The seed's examples, extended to the error paths, end to end: apiserver, operator, e2b-local
(tests/seed_examples/ runs them as written)."""

from __future__ import annotations

import json

import pytest

from e2b_operator.toolkit import TemplateBuilder, TemplateDeployer, TemplateRegistry
from e2b_operator.toolkit.cluster import NotFoundError
from e2b_operator.toolkit.collection import TEMPLATES
from seed import RESEARCH_AGENTS, RESEARCH_SWARM
from support import sandboxes, wait_for

pytestmark = pytest.mark.cluster


def register(registry: TemplateRegistry, *names: str) -> None:
    for name in names:
        registry.register_template(name, TEMPLATES[name]())


async def test_quick_start(registry: TemplateRegistry, deployer: TemplateDeployer) -> None:
    register(registry, "python-base")
    templates = registry.list_templates()
    assert len(templates) == 1
    deployment = await deployer.deploy_template("python_base")
    sandbox_id = deployment["sandbox_id"]
    assert sandbox_id and deployment["sandbox_ids"] == [sandbox_id]
    assert deployment["status"] == "Available" and deployment["deployed_at"]
    result = await deployer.execute_template(
        sandbox_id, input_data={"message": "Hello from template!"}
    )
    assert result["status"] == "success", result
    assert result["result"]["reply"] == "Received: Hello from template!"
    assert result["exit_code"] == 0 and result["error"] is None
    assert json.loads(result["stdout"]) == result["result"]
    assert result["duration"] >= 0 and result["sandbox_id"] == sandbox_id
    status = deployer.get_deployment_status(sandbox_id)
    assert status["deployment"] == deployment["deployment"] and status["deployed_at"]
    stats = deployer.get_deployment_stats()
    assert stats["total_deployments"] == 1 and stats["executions"]["succeeded"] == 1
    health = await deployer.health_check(sandbox_id)
    assert health["status"] == "healthy", health
    assert await deployer.cleanup(sandbox_id) is True


async def test_error_handling(registry: TemplateRegistry, deployer: TemplateDeployer, e2b) -> None:
    # 1. template validation errors: every problem listed
    builder = TemplateBuilder().set_type("tradingAgent").set_requirements(memory_mb=1)
    with pytest.raises(ValueError) as err:
        builder.build()
    errors = builder.validate()
    assert len(errors) >= 3 and all(e in str(err.value) for e in errors)
    # 2. deployment failures: an unknown template is a clear error, and absent from the registry
    with pytest.raises(NotFoundError, match="template 'my-template' not found"):
        await deployer.deploy_template("my_template")
    assert registry.get_template("my_template") is None
    # 3. execution errors: a crash and non-JSON output are status "error", with the output
    crash = TemplateBuilder.create_python_template("Crash", "fails").set_main_script(
        "import sys, json\nconfig = json.loads(sys.argv[1])\n"
        "print('partial output')\nraise SystemExit('boom: ' + config['why'])\n"
    )
    registry.register_template("crash", crash)
    d = await deployer.deploy_template("crash", name="crash")
    result = await deployer.execute_template(d["sandbox_id"], input_data={"why": "bad input"})
    assert result["status"] == "error" and result["reason"] == "NonZeroExit"
    assert result["exit_code"] == 1 and "boom: bad input" in result["stderr"]
    assert "boom: bad input" in result["error"] and result["stdout"].strip() == "partial output"
    health = await deployer.health_check(d["sandbox_id"])
    assert health["status"] == "healthy"
    with pytest.raises(NotFoundError, match="no deployment or sandbox 'sbx-nope'"):
        await deployer.execute_template("sbx-nope", input_data={})
    # an ephemeral sandbox from the template: non-JSON output, then killed (no leak)
    text = TemplateBuilder.create_python_template("Text", "prints text").set_main_script(
        "print('not json at all')"
    )
    registry.register_template("text", text)
    result = await deployer.execute(template="text", input_data={"a": 1})
    assert result["status"] == "error" and result["reason"] == "InvalidOutput"
    assert result["exit_code"] == 0 and "not json at all" in result["stdout"]
    wait_for(lambda: not sandboxes(e2b, **{"k8s-execution": result["execution"]}), 30, "no leak")
    # a timeout kills the run
    slow = TemplateBuilder.create_python_template("Slow", "sleeps").set_main_script(
        "import time\ntime.sleep(60)\n"
    )
    registry.register_template("slow", slow)
    result = await deployer.execute(template="slow", timeout=2)
    assert result["status"] == "error" and result["reason"] == "Timeout", result
    assert result["duration"] < 20


CUSTOM_SCRIPT = """
import json
import sys

def main():
    config = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    symbol = config.get('symbol', 'AAPL')
    prices = [100.0 + i for i in range(5)]  # offline stand-in for yfinance
    return {'symbol': symbol, 'price': prices[-1], 'volume': 1000}

if __name__ == '__main__':
    result = main()
    print(json.dumps(result))
"""


async def test_creating_custom_templates(
    registry: TemplateRegistry, deployer: TemplateDeployer
) -> None:
    builder = TemplateBuilder.create_python_template(
        "My Custom Agent", "Custom trading agent with specific indicators"
    )
    builder.set_requirements(memory_mb=2048)
    builder.set_main_script(CUSTOM_SCRIPT)
    template = builder.build()
    registry.register_template("custom_agent", template)
    assert registry.search_templates("indicators")[0].metadata["name"] == "custom-agent"
    result = await deployer.execute(template="custom_agent", input_data={"symbol": "MSFT"})
    assert result["status"] == "success", result
    assert result["result"] == {"symbol": "MSFT", "price": 104.0, "volume": 1000}


async def test_claude_flow_swarm(registry: TemplateRegistry, deployer: TemplateDeployer) -> None:
    builder = TemplateBuilder.create_claude_flow_template(
        "Research Swarm", agent_types=RESEARCH_AGENTS
    ).set_claude_flow_config(**RESEARCH_SWARM)
    registry.register_template("research_swarm", builder.build())
    deployment = await deployer.deploy_template("research_swarm")
    result = await deployer.execute_template(
        deployment["sandbox_id"], input_data={"task": "Assess the risk of a tech portfolio"}
    )
    assert result["status"] == "success", result
    assert isinstance(result["result"], dict) and result["exit_code"] == 0
