"""A sandbox ID names one instance: TemplateDeployer's per-sandbox calls on 3 instances."""

from __future__ import annotations

import pytest

from e2b_operator.toolkit import TemplateDeployer, TemplateRegistry
from support import apply, template, wait_condition, wait_for

pytestmark = pytest.mark.cluster

CHECK = "echo checked-by-hook; test ! -f /tmp/sick"
SCRIPT = """import json, pathlib, sys
config = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
if config.get("sick"):
    pathlib.Path("/tmp/sick").touch()
print(json.dumps({"ok": True}))
"""


async def test_per_sandbox_calls_act_on_that_instance_only(
    kube, namespace: str, operator, registry: TemplateRegistry, deployer: TemplateDeployer
) -> None:
    apply(
        kube,
        namespace,
        template("one", script=SCRIPT, hooks={"healthCheck": CHECK}),
        template("two"),
    )
    for name in ("one", "two"):
        wait_condition(kube, namespace, "e2bt", name, "Ready", 120, operator.tail)
    instances = await deployer.scale_template(
        "one", instances=3, config={"symbols": ["AAPL", "GOOGL", "MSFT"]}, name="fleet"
    )
    a, b, c = (i["sandbox_id"] for i in instances)

    status = deployer.get_deployment_status(b)
    assert (status["sandbox_id"], status["index"], status["status"]) == (b, 1, "Running")
    assert status["config"]["symbols"] == ["GOOGL"] and status["deployed_at"]
    health = await deployer.health_check(b)
    assert health["status"] == "healthy" and "checked-by-hook" in health["output"], health
    assert health["index"] == 1 and health["exit_code"] == 0

    # cleanup of one: the deployment shrinks by one, the other two keep their sandboxes
    assert await deployer.cleanup(b) is True
    info = await deployer.deployment_status("fleet")
    assert info["replicas"] == 2 and info["sandbox_ids"] == [a, c]
    assert deployer.get_deployment_status(c)["config"]["symbols"] == ["MSFT"]

    # the same template re-creates that instance only (the seed's recovery step)
    renewed = await deployer.update_template(c, "one")
    assert renewed["index"] == 2 and renewed["sandbox_id"] not in (a, c)
    assert renewed["config"]["symbols"] == ["MSFT"]
    info = await deployer.deployment_status("fleet")
    assert info["sandbox_ids"] == [a, renewed["sandbox_id"]]

    # another template moves that instance out, with its config; the other one stays
    moved = await deployer.update_template(renewed["sandbox_id"], "two")
    assert moved["template"] == "two" and moved["sandbox_id"] not in (a, renewed["sandbox_id"])
    assert deployer.get_deployment_status(moved["sandbox_id"])["config"]["symbols"] == ["MSFT"]
    assert (await deployer.deployment_status("fleet"))["sandbox_ids"] == [a]

    # the hook runs now: a sandbox made sick a moment ago is reported unhealthy at once
    assert (await deployer.execute_template(a, {"sick": True}))["status"] == "success"
    sick = await deployer.health_check(a, timeout=5)
    assert sick["status"] == "unhealthy" and sick["exit_code"] == 1, sick
    assert "checked-by-hook" in sick["output"] and "healthCheck hook exited 1" in sick["message"]

    # the last instance: cleanup deletes the deployment
    assert await deployer.cleanup(a) is True
    gone = ("-n", namespace, "get", "e2bd", "fleet", "--ignore-not-found", "-o", "name")
    wait_for(lambda: not kube.kubectl(*gone).stdout.strip(), 60, "fleet deleted", operator.tail)
    assert await deployer.cleanup("fleet") is False
