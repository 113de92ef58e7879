"""`template_router`: the seed's API Reference under /e2b/templates, over the Kubernetes API.

Every call is authorized for the caller (see session.py) and made with the caller's token,
through the toolkit: what an HTTP client does, kubectl and GitOps see too. `{id}` under
/deploy is a sandbox ID (a deployment name works too). Errors: see errors.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from e2b_operator.toolkit.builder import TemplateBuilder, slug
from e2b_operator.toolkit.cluster import resource_name
from e2b_operator.toolkit.registry import template_summary
from e2b_operator.toolkit.scaffolds import scaffold

from . import sse
from .auth import Permission
from .errors import ApiProblem, ProblemRoute
from .models import (
    ClaudeFlowTemplateRequest,
    DeployRequest,
    ExecuteRequest,
    PythonTemplateRequest,
    TemplateFields,
    TradingTemplateRequest,
    UpdateRequest,
)
from .session import Session, allow

TEMPLATES, DEPLOYMENTS, EXECUTIONS = "e2btemplates", "e2bdeployments", "e2bexecutions"
RUN = (
    Permission("list", DEPLOYMENTS),
    Permission("create", EXECUTIONS),
    Permission("get", EXECUTIONS),
    Permission("list", EXECUTIONS),
    Permission("watch", EXECUTIONS),
)
ListTemplates = Annotated[Session, allow(Permission("list", TEMPLATES))]
GetTemplate = Annotated[Session, allow(Permission("get", TEMPLATES))]
DeleteTemplate = Annotated[
    Session, allow(Permission("delete", TEMPLATES), Permission("list", DEPLOYMENTS))
]
CreateTemplate = Annotated[Session, allow(Permission("create", TEMPLATES))]
Deploy = Annotated[
    Session,
    allow(
        Permission("get", TEMPLATES),
        Permission("create", DEPLOYMENTS),
        Permission("get", DEPLOYMENTS),
    ),
]
Run = Annotated[Session, allow(*RUN)]
Update = Annotated[
    Session,
    allow(
        Permission("list", DEPLOYMENTS),
        Permission("get", TEMPLATES),
        Permission("patch", DEPLOYMENTS),
        Permission("get", DEPLOYMENTS),
        Permission("create", DEPLOYMENTS),  # a sandbox moved to another template
    ),
]
Cleanup = Annotated[
    Session,
    allow(
        Permission("list", DEPLOYMENTS),
        Permission("delete", DEPLOYMENTS),
        Permission("get", DEPLOYMENTS),
        Permission("patch", DEPLOYMENTS),  # one sandbox of several: its instance retired
    ),
]
ReadDeployments = Annotated[Session, allow(Permission("list", DEPLOYMENTS))]
"""What each route needs: the verbs the equivalent kubectl calls need."""
E2B_BUSY = {"RateLimited": 429, "BackendUnavailable": 503, "BackendUnreachable": 503}
"""Execution failure reasons that are E2B's transient errors, passed on as HTTP statuses."""
EVENT_STREAM = "text/event-stream"

template_router = APIRouter(prefix="/e2b/templates", route_class=ProblemRoute)

# -- registry ---------------------------------------------------------------------------------


@template_router.get("/registry/list", tags=["registry"])
async def list_templates(s: ListTemplates) -> dict[str, Any]:
    """List the namespace's E2BTemplates."""
    found = [template_summary(t) for t in await s.templates().list()]
    return {"namespace": s.namespace, "count": len(found), "templates": found}


@template_router.get("/registry/search", tags=["registry"])
async def search_templates(
    s: ListTemplates,
    query: Annotated[str, Query(description="words matched against name, tags, ...")] = "",
) -> dict[str, Any]:
    """Templates whose name, display name, description, tags or category match every word."""
    found = [template_summary(t) for t in await s.templates().search(query)]
    return {"namespace": s.namespace, "query": query, "count": len(found), "templates": found}


@template_router.get("/registry/template/{id}", tags=["registry"])
async def get_template(id: str, s: GetTemplate) -> Any:
    """One E2BTemplate: spec and status."""
    return _dump(await s.objects().get(TEMPLATES, resource_name(id)))


@template_router.delete("/registry/{id}", tags=["registry"])
async def delete_template(
    id: str,
    s: DeleteTemplate,
) -> dict[str, Any]:
    """Delete a template (409 while deployments use it); waits until the operator removed
    its E2B build."""
    name = resource_name(id)
    objects = s.objects()
    await objects.get(TEMPLATES, name)
    users = [
        d["metadata"]["name"]
        for d in await objects.list(DEPLOYMENTS)
        if d["spec"]["templateRef"]["name"] == name
    ]
    if users:
        raise ApiProblem(
            409,
            "Conflict",
            f"template {name!r} is used by deployment(s) {', '.join(users)}; delete them first",
        )
    await s.templates().delete(name, wait_seconds=60)
    return {"status": "deleted", "template": name, "namespace": s.namespace}


# -- builder ----------------------------------------------------------------------------------


@template_router.post("/builder/python", status_code=201, tags=["builder"])
async def build_python(body: PythonTemplateRequest, s: CreateTemplate) -> Any:
    """create_python_template(name, description), with the collection's Python base script
    unless main_script is given; returns the created E2BTemplate."""
    return await _register(s, body, scaffold("python", body.name, body.description))


@template_router.post("/builder/trading", status_code=201, tags=["builder"])
async def build_trading(body: TradingTemplateRequest, s: CreateTemplate) -> Any:
    """create_trading_template(name, strategy_type); returns the created E2BTemplate."""
    return await _register(s, body, scaffold("trading", body.name, strategy=body.strategy_type))


@template_router.post("/builder/claude-flow", status_code=201, tags=["builder"])
async def build_claude_flow(body: ClaudeFlowTemplateRequest, s: CreateTemplate) -> Any:
    """create_claude_flow_template(name, agent_types); returns the created E2BTemplate."""
    return await _register(s, body, scaffold("claude-flow", body.name, agents=body.agent_types))


async def _register(s: Session, body: TemplateFields, builder: TemplateBuilder) -> Any:
    if body.requirements:
        builder.set_requirements(**body.requirements)
    if body.main_script is not None:
        builder.set_main_script(body.main_script)
    if body.hooks:
        builder.set_hooks(**body.hooks)
    name = body.id or slug(getattr(body, "name", ""))
    try:
        builder.to_manifest(name)
    except ValueError as exc:
        if "invalid template name" in str(exc):
            raise ApiProblem(422, "Invalid", f"id: {exc}", "id") from exc
        raise
    created = await s.templates().register(name, builder, replace=False)
    return created.model_dump(mode="json", by_alias=True, exclude_none=True)


# -- deployments ------------------------------------------------------------------------------


@template_router.post("/deploy", status_code=201, tags=["deploy"])
async def deploy(
    body: DeployRequest,
    s: Deploy,
) -> dict[str, Any]:
    """Create an E2BDeployment of the template; with wait (default) returns once it is Ready,
    with sandbox_id."""
    config = dict(body.config)
    env = _env_vars(config.pop("env_vars", None))
    return await s.deployer().deploy_template(
        body.template_id,
        config=config,
        replicas=body.replicas,
        name=body.name,
        env=env,
        wait=body.wait,
    )


@template_router.post(
    "/deploy/{id}/execute",
    tags=["deploy"],
    responses={200: {"content": {EVENT_STREAM: {}}, "description": "result, or SSE"}},
)
async def execute(id: str, body: ExecuteRequest, request: Request, s: Run) -> Any:
    """Run the main script with input_data in sandbox `id`; the result when it finished, or
    with `Accept: text/event-stream` its output line by line as Server-Sent Events."""
    deployer = s.deployer()
    name = await deployer.start_template_execution(id, body.input_data, body.timeout)
    if EVENT_STREAM in request.headers.get("accept", ""):
        return _event_stream(s, name)
    return _passed_on(await deployer.wait_execution(name))


@template_router.get(
    "/deploy/{id}/execute/stream",
    tags=["deploy"],
    response_class=StreamingResponse,
    responses={200: {"content": {EVENT_STREAM: {}}, "description": "Server-Sent Events"}},
)
async def execute_stream(
    id: str,
    s: Run,
    input_data: Annotated[str, Query(description="JSON object given to the script")] = "{}",
    timeout: Annotated[int, Query(ge=1, le=3600)] = 60,
) -> StreamingResponse:
    """Like POST .../execute with Accept: text/event-stream, for GET-only SSE clients: events
    `execution`, `status`, `output` ({stream, line}) as each line is printed, `result`."""
    try:
        data = json.loads(input_data)
    except ValueError as exc:
        raise ApiProblem(422, "Invalid", f"input_data: not JSON: {exc}", "input_data") from exc
    if not isinstance(data, dict):
        raise ApiProblem(422, "Invalid", "input_data: must be a JSON object", "input_data")
    name = await s.deployer().start_template_execution(id, data, timeout)
    return _event_stream(s, name)


@template_router.put("/deploy/{id}/update", tags=["deploy"])
async def update(
    id: str,
    body: UpdateRequest,
    s: Update,
) -> dict[str, Any]:
    """Move sandbox `id`'s instance to template_id (the same template re-creates it; a
    deployment name rolls the deployment); returns once it runs."""
    return await s.deployer().update_template(id, body.template_id)


@template_router.delete("/deploy/{id}", tags=["deploy"])
async def cleanup(id: str, s: Cleanup) -> dict[str, Any]:
    """Remove sandbox `id`'s instance (the deployment shrinks by one; its last instance, or a
    deployment name, deletes the deployment); the operator runs the cleanup hook and kills."""
    if not await s.deployer().cleanup(id):
        raise ApiProblem(
            404, "NotFound", f"no deployment or sandbox {id!r} in namespace {s.namespace}"
        )
    return {"status": "deleted", "target": id, "namespace": s.namespace}


@template_router.get("/deploy/{id}/status", tags=["deploy"])
async def status(id: str, s: ReadDeployments) -> dict[str, Any]:
    """Sandbox `id`'s instance (status, index, config, deployed_at) or, for a deployment
    name, the deployment."""
    return await s.deployer().deployment_status(id)


@template_router.get("/deploy/{id}/health", tags=["deploy"])
async def health(id: str, s: Run) -> dict[str, Any]:
    """Sandbox `id`'s healthCheck hook, run now (healthy or unhealthy, with its output)."""
    return await s.deployer().health_check(id)


# -- helpers ----------------------------------------------------------------------------------


def _env_vars(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(v, str | int | float | bool) for v in value.values()
    ):
        raise ApiProblem(
            422,
            "Invalid",
            "config.env_vars: must be an object of NAME: value (strings or numbers)",
            "config.env_vars",
        )
    return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}


def _passed_on(result: dict[str, Any]) -> Any:
    """The result, or E2B's rate limit / unavailability as 429 / 503 with Retry-After."""
    status = E2B_BUSY.get(result.get("reason") or "")
    if status is None:
        return result
    return ApiProblem(
        status,
        result["reason"],
        f"E2B could not run execution {result['execution']}: {result['error']}",
        headers={"Retry-After": "5"},
        execution=result["execution"],
    ).response()


def _event_stream(s: Session, name: str) -> StreamingResponse:
    async def events() -> Any:
        yield {"event": "execution", "execution": name, "namespace": s.namespace}
        async for event in s.deployer().stream_execution(name):
            yield event

    return StreamingResponse(sse.stream(events()), media_type=EVENT_STREAM, headers=sse.HEADERS)


def _dump(obj: dict[str, Any]) -> dict[str, Any]:
    """An object without its managedFields noise."""
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k != "managedFields"}
    return {**obj, "metadata": meta}
