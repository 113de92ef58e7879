"""An E2BTemplate spec as an E2B build recipe: base image, ordered steps, start and ready.

Mapping: runtime -> base image; env (+ E2B_TEMPLATE_CONFIG, E2B_INSTANCE_CONFIG) -> ENV;
preInstall -> RUN; systemPackages -> apt; pythonPackages -> pip; nodePackages -> npm; files
and template.json -> COPY into /app; postInstall -> RUN; preStart -> start command;
cpuCores/memoryMB -> build resources (healthCheck is checked at run time, not at build).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Literal

from ..api import E2BTemplateSpec
from ..api.layout import APP_DIR, CONFIG_ENV, TEMPLATE_CONFIG, file_paths, main_script_path
from .hashing import stable_hash

StepKind = Literal["env", "run", "apt", "pip", "npm", "files", "workdir"]


class RecipeError(ValueError):
    """The spec cannot be turned into a build; the message names the field."""


@dataclass(frozen=True)
class Step:
    kind: StepKind
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BuildRecipe:
    base: tuple[Literal["python", "node"], str]
    steps: tuple[Step, ...]
    start_cmd: str | None
    ready_cmd: str | None
    cpu_count: int
    memory_mb: int


def recipe(spec: E2BTemplateSpec) -> BuildRecipe:
    """Translate a template spec into build steps, in the order they run."""
    req = spec.requirements
    runtime = req.runtime.value
    base: tuple[Literal["python", "node"], str] = (
        ("node", runtime.removeprefix("node"))
        if runtime.startswith("node")
        else ("python", runtime.removeprefix("python"))
    )
    hooks = spec.hooks
    files = {str(main_script_path(runtime)): spec.files.main_script}
    files.update(file_paths(spec.files.model_dump()))
    files[str(TEMPLATE_CONFIG)] = json.dumps(template_document(spec), indent=2) + "\n"
    for path in files:
        _check_path(path)
    # /app belongs to the sandbox user (uid 1000 on E2B images), so the operator can write
    # each instance's config there and scripts can keep state next to themselves.
    steps: list[Step] = [
        Step("run", (f"mkdir -p {APP_DIR} && chown 1000:1000 {APP_DIR}",)),
        Step("workdir", (str(APP_DIR),)),
    ]
    steps.append(Step("env", env=CONFIG_ENV | {e.name: e.value for e in req.env}))
    if hooks and hooks.pre_install:
        steps.append(Step("run", (hooks.pre_install,)))
    if req.system_packages:
        steps.append(Step("apt", tuple(req.system_packages)))
    if req.python_packages:
        steps.append(Step("pip", tuple(req.python_packages)))
    if req.node_packages:
        steps.append(Step("npm", tuple(req.node_packages)))
    steps.append(Step("files", (str(APP_DIR),), files=files))
    if hooks and hooks.post_install:
        steps.append(Step("run", (hooks.post_install,)))
    # The healthCheck hook is a runtime check of the running sandbox (its main script
    # included), which a build never starts: it is not the build's ready command.
    start = hooks.pre_start if hooks else None
    return BuildRecipe(
        base=base,
        steps=tuple(steps),
        start_cmd=start,
        ready_cmd="true" if start else None,
        cpu_count=req.cpu_cores,
        memory_mb=req.memory_mb,
    )


def template_document(spec: E2BTemplateSpec) -> dict[str, Any]:
    """The template configuration a sandbox reads from /app/template.json: the seed's
    TemplateConfig shape (template_type, metadata, requirements, hooks, claude_flow,
    claude_code, trading_agent, custom_config), snake_case, without the files."""
    data = spec.model_dump(mode="json", exclude={"files"}, exclude_none=True)
    meta_keys = ("display_name", "description", "version", "author", "tags", "category")
    metadata = {k: data.pop(k) for k in meta_keys if k in data}
    if "display_name" in metadata:
        metadata = {"name": metadata.pop("display_name"), **metadata}
    return {"template_type": data.pop("type"), "metadata": metadata, **data}


def spec_hash(spec: E2BTemplateSpec) -> str:
    """Hash of everything that goes into the build (a change means a rebuild)."""
    return stable_hash(spec.wire())


def _check_path(path: str) -> None:
    parts = PurePosixPath(path).parts
    if ".." in parts or not path.startswith(f"{APP_DIR}/"):
        raise RecipeError(
            f"spec.files: path {path!r} leaves {APP_DIR}; use a relative path without '..'"
        )
