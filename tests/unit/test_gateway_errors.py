"""The gateway's error mapping: every failure becomes {code, message, field} with a status."""

from __future__ import annotations

import pytest
from fastapi.exceptions import RequestValidationError

from e2b_operator import api
from e2b_operator.gateway.errors import ApiProblem, problem
from e2b_operator.toolkit.cluster import (
    ClusterUnreachable,
    Conflict,
    NotFoundError,
    ToolkitError,
    WaitTimeout,
)
from e2b_operator.toolkit.deployer import DeploymentFailed, DeploymentTimeout


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (NotFoundError("template 'x' not found", 404), 404, "NotFound"),
        (Conflict("exists", 409), 409, "Conflict"),
        (DeploymentFailed("stalled"), 409, "DeploymentFailed"),
        (DeploymentTimeout("not ready in time"), 504, "Timeout"),
        (WaitTimeout("still being deleted"), 504, "Timeout"),
        (ClusterUnreachable("down"), 503, "KubernetesUnavailable"),
        (ToolkitError("forbidden", 403), 403, "Forbidden"),
        (ToolkitError("slow down", 429), 429, "TooManyRequests"),
        (ToolkitError("etcd", 500), 503, "KubernetesUnavailable"),
        (ToolkitError("odd", 400), 502, "KubernetesError"),
        (ValueError("bad\n value"), 422, "Invalid"),
        (RuntimeError("boom"), 500, "Internal"),
    ],
)
def test_status_and_code(exc: Exception, status: int, code: str) -> None:
    found = problem(exc)
    assert (found.status, found.code) == (status, code)
    body = found.body()
    assert set(body) >= {"code", "message", "field"}
    if status in (429, 503):
        assert found.headers["Retry-After"]
    if status == 500:
        assert "boom" not in body["message"]  # no internals to the client


def test_invalid_object_names_the_field() -> None:
    exc = api.InvalidObject("template", ["spec.requirements.memoryMB: must be >= 128", "spec: x"])
    found = problem(exc)
    assert (found.status, found.field) == (422, "spec.requirements.memoryMB")
    assert [p["field"] for p in found.body()["problems"]] == ["spec.requirements.memoryMB", "spec"]


def test_request_validation_names_the_field() -> None:
    exc = RequestValidationError(
        [{"loc": ("body", "config", "env_vars"), "msg": "bad", "type": "dict_type"}]
    )
    assert problem(exc).field == "config.env_vars"
    raw = RequestValidationError([{"loc": ("body", 7), "msg": "x", "type": "json_invalid"}])
    assert problem(raw).field == "body"
    query = RequestValidationError([{"loc": ("query", "timeout"), "msg": "x", "type": "int"}])
    assert problem(query).field == "timeout"


def test_an_api_problem_is_itself() -> None:
    mine = ApiProblem(403, "Forbidden", "no", verb="get")
    assert problem(mine) is mine and mine.body()["verb"] == "get"
