"""E2B template builds through the SDK's ``AsyncTemplate``: start, poll, delete."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from e2b import AsyncTemplate
from e2b.api.client.api.templates import delete_templates_template_id
from e2b.api.client_async import get_api_client
from e2b.connection_config import ConnectionConfig
from e2b.template.types import BuildInfo

from ..reconcile.observed import BuildProgress
from ..reconcile.recipe import BuildRecipe, Step
from .connection import Connection
from .errors import BackendError, deadline, translated

LOG_LINES = 200


class TemplateBuilds:
    """Builds E2B templates from recipes; never blocks on a build. Every call but the
    upload that starts a build answers within the connection's request timeout."""

    def __init__(self, connection: Connection) -> None:
        self._opts = connection.params()
        self._timeout = connection.request_timeout

    @translated
    async def start(self, name: str, recipe: BuildRecipe) -> BuildProgress:
        """Upload the recipe's files and start the build in the background."""
        with tempfile.TemporaryDirectory(prefix="e2b-template-") as context:
            template = _template(recipe, Path(context))
            info = await AsyncTemplate.build_in_background(
                template,
                name,
                cpu_count=recipe.cpu_count,
                memory_mb=recipe.memory_mb,
                **self._opts,
            )
        return BuildProgress(info.template_id, info.build_id, "waiting")

    @translated
    async def poll(self, template_id: str, build_id: str, name: str) -> BuildProgress:
        """The build's status and the tail of its log."""
        info = BuildInfo(template_id=template_id, build_id=build_id, name=name, alias=name, tags=[])
        async with deadline(self._timeout):
            got = await AsyncTemplate.get_build_status(info, logs_offset=0, **self._opts)
        logs = tuple(str(e.message) for e in (got.log_entries or [])[-LOG_LINES:])
        reason = getattr(got.reason, "message", "") if got.reason else ""
        status = str(getattr(got.status, "value", got.status))
        return BuildProgress(template_id, build_id, status, logs, reason or "")  # type: ignore[arg-type]

    @translated
    async def visible(self, template_id: str) -> bool:
        """Whether these credentials reach the template: False when E2B answers that it does
        not exist or belongs to another team (404, 403)."""
        client = get_api_client(ConnectionConfig(**self._opts))
        http = client.get_async_httpx_client()  # the status is all we need: nothing to parse
        async with deadline(self._timeout):
            resp = await http.request("GET", f"/templates/{template_id}", params={"limit": 1})
        if resp.status_code in (403, 404):
            return False
        if resp.status_code >= 300:
            raise BackendError(
                "BackendError", f"E2B answered {resp.status_code} looking up {template_id}"
            )
        return True

    @translated
    async def delete(self, template_id: str) -> None:
        """Delete the E2B template; a template that is already gone is fine."""
        client = get_api_client(ConnectionConfig(**self._opts))
        async with deadline(self._timeout):
            resp = await delete_templates_template_id.asyncio_detailed(template_id, client=client)
        if resp.status_code not in (200, 202, 204, 404):
            raise BackendError(
                "TemplateDeleteFailed", f"E2B answered {resp.status_code} deleting {template_id}"
            )


def _template(recipe: BuildRecipe, context: Path) -> Any:
    kind, version = recipe.base
    base = AsyncTemplate(file_context_path=str(context))
    tpl = base.from_node_image(version) if kind == "node" else base.from_python_image(version)
    for step in recipe.steps:
        tpl = _apply(tpl, step, context)
    if recipe.start_cmd:
        return tpl.set_start_cmd(recipe.start_cmd, recipe.ready_cmd or "true")
    if recipe.ready_cmd:
        return tpl.set_ready_cmd(recipe.ready_cmd)
    return tpl


def _apply(tpl: Any, step: Step, context: Path) -> Any:
    match step.kind:
        case "workdir":
            return tpl.set_workdir(step.args[0])
        case "env":
            return tpl.set_envs(step.env)
        case "run":
            return tpl.run_cmd(step.args[0], user="root")
        case "apt":
            return tpl.apt_install(list(step.args))
        case "pip":
            return tpl.pip_install(list(step.args))
        case "npm":
            return tpl.npm_install(list(step.args))
        case "files":
            # Every path is under one directory (the recipe checks it): one COPY of that tree.
            root = step.args[0]
            for path, content in step.files.items():
                local = context / "files" / path.lstrip("/")
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_text(content)
            return tpl.copy(f"files/{root.strip('/')}/", f"{root.rstrip('/')}/")
    raise ValueError(f"unknown build step {step.kind}")
