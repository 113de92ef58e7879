"""The seed's Quick Start 1, Error Handling 3 and Monitoring and Debugging, as written (the
seed's `from src.e2b_templates import ...` is `from e2b_operator.toolkit import ...`); the
lines marked `# setup` give the names the seed's text assumes from earlier steps."""

from __future__ import annotations

import pytest

from e2b_operator.toolkit import TemplateDeployer, TemplateRegistry

pytestmark = pytest.mark.cluster


async def test_quick_start_execution_errors_and_monitoring(collection, capsys) -> None:
    collection("python-base")  # setup: the pre-built template in the cluster

    # Initialize components
    registry = TemplateRegistry()
    deployer = TemplateDeployer()

    # List available templates
    templates = registry.list_templates()
    print(f"Available templates: {len(templates)}")

    # Deploy a template
    deployment = await deployer.deploy_template("python_base")
    sandbox_id = deployment["sandbox_id"]

    # Execute template
    result = await deployer.execute_template(
        sandbox_id,
        input_data={"message": "Hello from template!"}
    )  # fmt: skip

    assert "Available templates: 1" in capsys.readouterr().out
    assert result["status"] == "success", result
    assert result["result"]["reply"] == "Received: Hello from template!"

    data = {"data": [1, "two"]}  # setup: an input the script refuses
    result = await deployer.execute_template(sandbox_id, input_data=data)
    if result["status"] == "error":
        print(f"Execution failed: {result['error']}")

        # Check health
        health = await deployer.health_check(sandbox_id)
        print(f"Sandbox health: {health}")

    out = capsys.readouterr().out
    assert "Execution failed: main script exited 1" in out
    assert health["status"] == "healthy" and health["exit_code"] == 0, health

    # Check deployment status
    status = deployer.get_deployment_status(sandbox_id)
    print(f"Status: {status['status']}")
    print(f"Deployed: {status['deployed_at']}")

    # Get deployment statistics
    stats = deployer.get_deployment_stats()
    print(f"Total deployments: {stats['total_deployments']}")

    out = capsys.readouterr().out
    assert "Status: Running" in out and f"Deployed: {status['deployed_at']}" in out
    assert status["sandbox_id"] == sandbox_id and status["deployed_at"]
    assert "Total deployments: 1" in out

    template_id = "python_base"  # setup: the template the sandbox was deployed from
    # fmt: off
    # Regular health checks
    health = await deployer.health_check(sandbox_id)
    if health['status'] != 'healthy':
        print(f"Health issue: {health['message']}")

        # Attempt recovery
        await deployer.update_template(sandbox_id, template_id)

    assert health["status"] == "healthy" and "Health issue" not in capsys.readouterr().out

    # Track execution times
    import time
    start_time = time.time()

    result = await deployer.execute_template(sandbox_id, input_data=data)

    execution_time = time.time() - start_time
    print(f"Execution time: {execution_time:.2f}s")
    # fmt: on

    assert "Execution time: " in capsys.readouterr().out and result["exit_code"] == 1
