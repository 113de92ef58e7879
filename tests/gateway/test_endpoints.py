"""Every endpoint's success and error paths, with the stable JSON error shape."""

from __future__ import annotations

import httpx
import pytest

from e2b_operator.controlplane.cluster import LocalCluster
from support import get

from .gateway_support import Users

pytestmark = pytest.mark.cluster
T = "/e2b/templates"


def problem(answer: httpx.Response, status: int, code: str, field: str | None = None) -> dict:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["code"] == code and body["field"] == field, body
    assert body["message"]
    return body


def test_registry_template_and_delete(
    alice: httpx.Client, python_base: str, sandbox_id: str, kube: LocalCluster, users: Users
) -> None:
    found = alice.get(f"{T}/registry/template/python_base")
    assert found.status_code == 200, found.text
    obj = found.json()
    assert obj["kind"] == "E2BTemplate" and obj["status"]["phase"] == "Ready"
    assert "managedFields" not in obj["metadata"]
    problem(alice.get(f"{T}/registry/template/nope"), 404, "NotFound")
    used = problem(alice.delete(f"{T}/registry/python_base"), 409, "Conflict")
    assert "python-base-" in used["message"]
    problem(alice.delete(f"{T}/registry/nope"), 404, "NotFound")
    made = alice.post(
        f"{T}/builder/claude-flow", json={"name": "Swarm", "agent_types": ["researcher", "coder"]}
    )
    assert made.status_code == 201, made.text
    assert made.json()["spec"]["claudeFlow"]["agentTypes"] == ["researcher", "coder"]
    gone = alice.delete(f"{T}/registry/swarm")
    assert gone.status_code == 200 and gone.json()["template"] == "swarm", gone.text
    problem(alice.get(f"{T}/registry/template/swarm"), 404, "NotFound")


def test_builder_validation(alice: httpx.Client, kube: LocalCluster, users: Users) -> None:
    body = {
        "name": "Tiny",
        "description": "prints its input",
        "id": "tiny",
        "requirements": {"python_packages": ["six"], "memory_mb": 256},
        "main_script": "import sys; print(sys.argv[1])",
    }
    made = alice.post(f"{T}/builder/python", json=body)
    assert made.status_code == 201, made.text
    spec = get(kube, users.namespace, "e2bt", "tiny")["spec"]
    assert spec["requirements"]["pythonPackages"] == ["six"]
    assert spec["files"]["mainScript"] == body["main_script"]
    problem(alice.post(f"{T}/builder/python", json=body), 409, "Conflict")
    small = {**body, "id": "small", "requirements": {"memory_mb": 1}}
    bad = problem(
        alice.post(f"{T}/builder/python", json=small), 422, "Invalid", "spec.requirements.memoryMB"
    )
    assert bad["problems"][0]["field"] == "spec.requirements.memoryMB"
    problem(alice.post(f"{T}/builder/python", json={"description": "x"}), 422, "Invalid", "name")
    odd = {"name": "x", "description": "y", "colour": "red"}
    problem(alice.post(f"{T}/builder/python", json=odd), 422, "Invalid", "colour")
    named = {"name": "x", "description": "y", "id": "Not_Valid"}
    problem(alice.post(f"{T}/builder/python", json=named), 422, "Invalid", "id")
    problem(alice.post(f"{T}/builder/trading", json={"name": "x"}), 422, "Invalid", "strategy_type")
    no_agents = {"name": "x", "agent_types": []}
    problem(alice.post(f"{T}/builder/claude-flow", json=no_agents), 422, "Invalid", "agent_types")
    raw = alice.post(
        f"{T}/builder/python", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert "not valid JSON" in problem(raw, 422, "Invalid", "body")["message"]


def test_deploy_errors(alice: httpx.Client, python_base: str) -> None:
    problem(alice.post(f"{T}/deploy", json={"template_id": "nope"}), 404, "NotFound")
    problem(alice.post(f"{T}/deploy", json={}), 422, "Invalid", "template_id")
    problem(alice.post(f"{T}/deploy", json=[]), 422, "Invalid", "body")
    env = {"template_id": "python_base", "config": {"env_vars": ["DEBUG"]}}
    problem(alice.post(f"{T}/deploy", json=env), 422, "Invalid", "config.env_vars")
    many = {"template_id": "python_base", "replicas": -1}
    problem(alice.post(f"{T}/deploy", json=many), 422, "Invalid", "replicas")


def test_status_health_and_execute_errors(alice: httpx.Client, sandbox_id: str) -> None:
    status = alice.get(f"{T}/deploy/{sandbox_id}/status")
    assert status.status_code == 200, status.text
    assert status.json()["sandbox_ids"] == [sandbox_id] and status.json()["deployed_at"]
    health = alice.get(f"{T}/deploy/{sandbox_id}/health")
    assert health.status_code == 200 and health.json()["status"] == "healthy", health.text
    for path in ("status", "health"):
        problem(alice.get(f"{T}/deploy/sandbox_123/{path}"), 404, "NotFound")
    slow = {"input_data": {}, "timeout": 0}
    problem(alice.post(f"{T}/deploy/{sandbox_id}/execute", json=slow), 422, "Invalid", "timeout")
    listed = {"input_data": [1]}
    problem(
        alice.post(f"{T}/deploy/{sandbox_id}/execute", json=listed), 422, "Invalid", "input_data"
    )
    stream = alice.get(f"{T}/deploy/{sandbox_id}/execute/stream?input_data=nope")
    problem(stream, 422, "Invalid", "input_data")
    problem(alice.delete(f"{T}/deploy/sandbox_123"), 404, "NotFound")
    unknown = {"template_id": "nope"}
    problem(alice.put(f"{T}/deploy/{sandbox_id}/update", json=unknown), 404, "NotFound")


def test_server_docs_and_health(alice: httpx.Client) -> None:
    assert alice.get("/healthz").json() == {"status": "ok"}
    spec = alice.get("/openapi.json").json()
    for path in (
        "/e2b/templates/registry/list",
        "/e2b/templates/registry/search",
        "/e2b/templates/registry/template/{id}",
        "/e2b/templates/registry/{id}",
        "/e2b/templates/builder/python",
        "/e2b/templates/builder/trading",
        "/e2b/templates/builder/claude-flow",
        "/e2b/templates/deploy",
        "/e2b/templates/deploy/{id}/execute",
        "/e2b/templates/deploy/{id}/execute/stream",
        "/e2b/templates/deploy/{id}/update",
        "/e2b/templates/deploy/{id}",
        "/e2b/templates/deploy/{id}/status",
        "/e2b/templates/deploy/{id}/health",
    ):
        assert path in spec["paths"], path
    assert alice.get("/docs").status_code == 200
