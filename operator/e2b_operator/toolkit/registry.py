"""TemplateRegistry: the seed's registry over E2BTemplate objects in one namespace.

Synchronous like the seed (`registry.list_templates()`): each call opens a kubernetes_asyncio
client, runs, and closes it (in a worker thread when an event loop is already running, so it
works inside async code too). `Templates` is the same over a given client, for async callers.
Names may be seed-style ids: `python_base` is `python-base`.
"""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from e2b_operator import api
from e2b_operator.api import E2BTemplate, E2BTemplateSpec

from .builder import TemplateBuilder
from .cluster import (
    Conflict,
    Objects,
    ToolkitError,
    WaitTimeout,
    connect,
    default_namespace,
    resource_name,
    run_sync,
)
from .models import TemplateConfig

PLURAL = "e2btemplates"
T = TypeVar("T")
TemplateLike = TemplateBuilder | TemplateConfig | E2BTemplateSpec | E2BTemplate | Mapping[str, Any]


def template_spec(template: TemplateLike) -> dict[str, Any]:
    """The wire spec of a builder, TemplateConfig (build()'s result), typed spec, E2BTemplate,
    or spec/manifest mapping.

    Raises ValueError (api.InvalidObject) listing every problem, as the apiserver would.
    """
    if isinstance(template, TemplateBuilder):
        template.build()
        return template.draft()
    if isinstance(template, TemplateConfig):
        return template.wire()
    if isinstance(template, E2BTemplate):
        return template.spec.wire()
    if isinstance(template, E2BTemplateSpec):
        return template.wire()
    spec = dict(template.get("spec", template))
    found = api.spec_problems("E2BTemplate", spec)
    if found:
        raise api.InvalidObject("template", found)
    return spec


def matches(template: E2BTemplate, query: str) -> bool:
    """Every word of the query occurs in the name, display name, description, tags or
    category (case-insensitive)."""
    spec = template.spec
    text = " ".join(
        [
            template.metadata.get("name", ""),
            spec.display_name or "",
            spec.description or "",
            spec.category or "",
            *spec.tags,
        ]
    ).lower()
    return all(word in text for word in query.lower().split())


def template_summary(template: E2BTemplate) -> dict[str, Any]:
    """One catalogue line of a template: name, display name, type, runtime, phase, ..."""
    spec = template.spec
    return {
        "name": template.metadata["name"],
        "display_name": spec.display_name,
        "type": spec.type.value,
        "runtime": spec.requirements.runtime.value,
        "category": spec.category,
        "phase": template.status.phase if template.status else None,
        "tags": spec.tags,
        "description": spec.description,
    }


class Templates:
    """The registry's operations over one namespace's Objects (async; used by the gateway)."""

    def __init__(self, objects: Objects) -> None:
        self.objects = objects

    async def list(self) -> list[E2BTemplate]:
        """Every template in the namespace, by name."""
        return [E2BTemplate.from_wire(o) for o in await self.objects.list(PLURAL)]

    async def search(self, query: str) -> builtins.list[E2BTemplate]:  # `list` is a method here
        """Templates matching every word of `query`."""
        return [t for t in await self.list() if matches(t, query)]

    async def get(self, name: str) -> E2BTemplate | None:
        """The template, or None when it does not exist."""
        found = await self.objects.find(PLURAL, resource_name(name))
        return E2BTemplate.from_wire(found) if found else None

    async def register(
        self,
        name: str,
        template: TemplateLike,
        labels: Mapping[str, str] | None = None,
        replace: bool = True,
    ) -> E2BTemplate:
        """Create the template, or (replace=True) replace the spec of an existing one; labels
        are merged. Conflict when it exists and replace is False."""
        spec = template_spec(template)
        body = {
            "apiVersion": api.API_VERSION,
            "kind": "E2BTemplate",
            "metadata": {"name": resource_name(name), "labels": dict(labels or {})},
            "spec": spec,
        }
        if not replace:
            return E2BTemplate.from_wire(await self.objects.create(PLURAL, body))
        for _ in range(5):
            current = await self.objects.find(PLURAL, body["metadata"]["name"])
            try:
                if current is None:
                    return E2BTemplate.from_wire(await self.objects.create(PLURAL, body))
                current["metadata"].setdefault("labels", {}).update(body["metadata"]["labels"])
                current["spec"] = spec
                return E2BTemplate.from_wire(await self.objects.replace(PLURAL, current))
            except Conflict:
                continue
        raise ToolkitError(f"template {name!r} keeps changing; try again")

    async def delete(self, name: str, wait_seconds: float = 60.0) -> None:
        """Delete the template and wait until it is gone (the operator finalizes it first);
        NotFoundError when it does not exist."""
        rname = resource_name(name)
        await self.objects.delete(PLURAL, rname)
        deadline = time.monotonic() + wait_seconds
        while await self.objects.find(PLURAL, rname) is not None:
            if time.monotonic() > deadline:
                raise WaitTimeout(f"template {name!r} is still being deleted")
            await asyncio.sleep(0.3)


class TemplateRegistry:
    """List, search, get, register (create or replace) and delete E2BTemplates."""

    def __init__(
        self,
        namespace: str | None = None,
        kubeconfig: str | None = None,
        context: str | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.context = context
        self.namespace = namespace or default_namespace(kubeconfig, context)

    def list_templates(self) -> list[E2BTemplate]:
        """Every template in the namespace, by name."""
        return self._run(lambda t: t.list())

    def search_templates(self, query: str) -> list[E2BTemplate]:
        """Templates whose name, display name, description, tags or category match every
        word of `query`."""
        return self._run(lambda t: t.search(query))

    def get_template(self, name: str) -> E2BTemplate | None:
        """The template, or None when it does not exist."""
        return self._run(lambda t: t.get(name))

    def register_template(
        self, name: str, template: TemplateLike, labels: Mapping[str, str] | None = None
    ) -> E2BTemplate:
        """Create the template, or replace the spec of an existing one (the operator
        rebuilds it); labels are merged. Raises ValueError listing every problem."""
        return self._run(lambda t: t.register(name, template, labels))

    def delete_template(self, name: str, wait_seconds: float = 60.0) -> None:
        """Delete the template and wait until it is gone (the operator finalizes it first);
        NotFoundError when it does not exist."""
        self._run(lambda t: t.delete(name, wait_seconds))

    def _run(self, fn: Callable[[Templates], Awaitable[T]]) -> T:
        async def call() -> T:
            api_client = await connect(self.kubeconfig, self.context)
            async with api_client:
                return await fn(Templates(Objects(api_client, self.namespace)))

        return run_sync(call)
