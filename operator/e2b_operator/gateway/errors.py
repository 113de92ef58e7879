"""JSON errors with one stable shape: {"code", "message", "field", ...details}.

`ProblemRoute` turns every failure of a route into such a response, so the shape holds in
any application that includes the router (a router cannot install exception handlers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from e2b_operator import api
from e2b_operator.toolkit.cluster import (
    ClusterUnreachable,
    Conflict,
    NotFoundError,
    ToolkitError,
    WaitTimeout,
)
from e2b_operator.toolkit.deployer import DeploymentFailed

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = "5"


class ApiProblem(Exception):
    """An HTTP error with a code (CamelCase), a message, the offending field if any, extra
    JSON details and response headers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers or {}
        self.details = details

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "field": self.field, **self.details}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def problem(exc: Exception) -> ApiProblem:
    """The ApiProblem for any exception a route may raise."""
    match exc:
        case ApiProblem():
            return exc
        case RequestValidationError():
            found = [_validation_problem(e) for e in exc.errors()]
            return ApiProblem(
                422, "Invalid", found[0]["message"], found[0]["field"], problems=found
            )
        case api.InvalidObject():
            found = [_object_problem(p) for p in exc.problems]
            return ApiProblem(422, "Invalid", exc.problems[0], found[0]["field"], problems=found)
        case NotFoundError():
            return ApiProblem(404, "NotFound", str(exc))
        case Conflict():
            return ApiProblem(409, "Conflict", str(exc))
        case WaitTimeout():
            return ApiProblem(504, "Timeout", str(exc))
        case DeploymentFailed():
            return ApiProblem(409, "DeploymentFailed", str(exc))
        case ClusterUnreachable():
            return _retry(503, "KubernetesUnavailable", str(exc))
        case ToolkitError():
            return _from_apiserver(exc)
        case HTTPException():
            headers = dict(exc.headers) if exc.headers else None
            return ApiProblem(exc.status_code, "HTTPError", str(exc.detail), headers=headers)
        case ValueError():
            return ApiProblem(422, "Invalid", " ".join(str(exc).split()))
    log.exception("unexpected error", exc_info=exc)
    return ApiProblem(500, "Internal", "internal error in the gateway; see its log")


def _from_apiserver(exc: ToolkitError) -> ApiProblem:
    status = exc.status or 502
    if status in (401, 403, 422):
        code = {401: "Unauthorized", 403: "Forbidden", 422: "Invalid"}[status]
        return ApiProblem(status, code, str(exc))
    if status == 429:
        return _retry(429, "TooManyRequests", str(exc))
    if status >= 500:
        return _retry(503, "KubernetesUnavailable", str(exc))
    return ApiProblem(502, "KubernetesError", str(exc))


def _retry(status: int, code: str, message: str) -> ApiProblem:
    return ApiProblem(status, code, message, headers={"Retry-After": RETRY_AFTER_SECONDS})


def _validation_problem(error: dict[str, Any]) -> dict[str, Any]:
    if error.get("type") == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "")
        return {"field": "body", "message": f"body: not valid JSON: {reason}".rstrip(": ")}
    loc = [str(part) for part in error.get("loc", ())]
    body = bool(loc) and loc[0] == "body"
    field = (".".join(loc[1:]) or "body") if body else (loc[-1] if loc else None)
    return {"field": field, "message": f"{field}: {error.get('msg', 'invalid')}"}


def _object_problem(line: str) -> dict[str, Any]:
    field, sep, _ = line.partition(": ")
    return {"field": field if sep else None, "message": line}


class ProblemRoute(APIRoute):
    """An APIRoute whose failures become JSON problems (see `problem`)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                return problem(exc).response()

        return route
