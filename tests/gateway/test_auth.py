"""Kubernetes authentication and authorization at the gateway: TokenReview and
SubjectAccessReview for the caller, in the request's namespace."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from e2b_operator import localstack

from .gateway_support import Users

pytestmark = pytest.mark.cluster

EVERY_ENDPOINT = [
    ("GET", "/e2b/templates/registry/list", None, "list", "e2btemplates"),
    ("GET", "/e2b/templates/registry/search?query=x", None, "list", "e2btemplates"),
    ("GET", "/e2b/templates/registry/template/python_base", None, "get", "e2btemplates"),
    ("DELETE", "/e2b/templates/registry/python_base", None, "delete", "e2btemplates"),
    ("POST", "/e2b/templates/builder/python", {"name": "n", "description": "d"}, "create",
     "e2btemplates"),
    ("POST", "/e2b/templates/builder/trading", {"name": "n", "strategy_type": "rsi"}, "create",
     "e2btemplates"),
    ("POST", "/e2b/templates/builder/claude-flow", {"name": "n", "agent_types": ["coder"]},
     "create", "e2btemplates"),
    ("POST", "/e2b/templates/deploy", {"template_id": "python_base"}, "get", "e2btemplates"),
    ("POST", "/e2b/templates/deploy/sbx/execute", {"input_data": {}}, "list", "e2bdeployments"),
    ("GET", "/e2b/templates/deploy/sbx/execute/stream", None, "list", "e2bdeployments"),
    ("PUT", "/e2b/templates/deploy/sbx/update", {"template_id": "x"}, "list", "e2bdeployments"),
    ("DELETE", "/e2b/templates/deploy/sbx", None, "list", "e2bdeployments"),
    ("GET", "/e2b/templates/deploy/sbx/status", None, "list", "e2bdeployments"),
    ("GET", "/e2b/templates/deploy/sbx/health", None, "list", "e2bdeployments"),
]  # fmt: skip


def call(client: httpx.Client, method: str, path: str, body: dict | None) -> httpx.Response:
    return client.request(method, path, json=body)


def test_no_token_or_a_forged_one_is_401(gateway: localstack.Gateway, users: Users) -> None:
    header = base64.urlsafe_b64encode(json.dumps({"alg": "RS256"}).encode()).decode()
    forged = f"{header}.eyJzdWIiOiJzeXN0ZW06YWRtaW4ifQ.c2lnbmF0dXJl"
    for token in (None, "not-a-token", forged):
        with users.client(gateway, token) as client:
            for method, path, body, _, _ in EVERY_ENDPOINT:
                answer = call(client, method, path, body)
                assert answer.status_code == 401, (token, path, answer.text)
                problem = answer.json()
                assert problem["code"] == "Unauthorized" and problem["field"] is None
                assert answer.headers["www-authenticate"].startswith("Bearer")
    with users.client(gateway, None) as client:
        assert "no bearer token" in client.get("/e2b/templates/registry/list").json()["message"]


def test_a_user_without_rbac_is_403_everywhere(gateway: localstack.Gateway, users: Users) -> None:
    with users.client(gateway, users.bob) as bob:
        for method, path, body, verb, resource in EVERY_ENDPOINT:
            answer = call(bob, method, path, body)
            assert answer.status_code == 403, (path, answer.text)
            problem = answer.json()
            assert problem["code"] == "Forbidden"
            assert (problem["verb"], problem["resource"], problem["namespace"]) == (
                verb,
                f"{resource}.e2b.dev",
                users.namespace,
            )
            assert f"system:serviceaccount:{users.namespace}:bob" in problem["message"]
            assert verb in problem["message"] and users.namespace in problem["message"]


def test_rbac_is_per_namespace(gateway: localstack.Gateway, users: Users) -> None:
    with users.client(gateway, users.alice) as alice:
        assert alice.get("/e2b/templates/registry/list").status_code == 200
        elsewhere = alice.get("/e2b/templates/registry/list?namespace=default")
        assert elsewhere.status_code == 403, elsewhere.text
        assert elsewhere.json()["namespace"] == "default"
        bad = alice.get("/e2b/templates/registry/list?namespace=Not_A_Namespace")
        assert bad.status_code == 422 and bad.json()["field"] == "namespace"


def test_tokens_never_reach_the_gateway_log(gateway: localstack.Gateway, users: Users) -> None:
    with users.client(gateway, users.alice) as alice:
        assert alice.get("/e2b/templates/registry/template/nope").status_code == 404
    with users.client(gateway, users.bob) as bob:
        assert bob.get("/e2b/templates/registry/list").status_code == 403
    text = gateway.log.read_text()
    assert "/e2b/templates/registry/list" in text  # the access log is there
    for token in (users.alice, users.bob):
        assert token not in text and token.split(".")[1] not in text
