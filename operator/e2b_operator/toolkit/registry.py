"""TemplateRegistry: the seed's registry over E2BTemplate objects in one namespace.

Synchronous like the seed (`registry.list_templates()`): each call opens a kubernetes_asyncio
client, runs, and closes it (in a worker thread when an event loop is already running, so it
works inside async code too). Names may be seed-style ids: `python_base` is `python-base`.
"""

from __future__ import annotations

import asyncio
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
    connect,
    default_namespace,
    resource_name,
    run_sync,
)

PLURAL = "e2btemplates"
T = TypeVar("T")
TemplateLike = TemplateBuilder | E2BTemplateSpec | E2BTemplate | Mapping[str, Any]


def template_spec(template: TemplateLike) -> dict[str, Any]:
    """The wire spec of a builder, typed spec, E2BTemplate, or spec/manifest mapping.

    Raises ValueError (api.InvalidObject) listing every problem, as the apiserver would.
    """
    if isinstance(template, TemplateBuilder):
        template.build()
        return template.draft()
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
        return self._run(lambda o: _list(o))

    def search_templates(self, query: str) -> list[E2BTemplate]:
        """Templates whose name, display name, description, tags or category match every
        word of `query`."""
        return [t for t in self.list_templates() if matches(t, query)]

    def get_template(self, name: str) -> E2BTemplate | None:
        """The template, or None when it does not exist."""

        async def get(objects: Objects) -> E2BTemplate | None:
            found = await objects.find(PLURAL, resource_name(name))
            return E2BTemplate.from_wire(found) if found else None

        return self._run(get)

    def register_template(
        self, name: str, template: TemplateLike, labels: Mapping[str, str] | None = None
    ) -> E2BTemplate:
        """Create the template, or replace the spec of an existing one (the operator
        rebuilds it); labels are merged. Raises ValueError listing every problem."""
        spec = template_spec(template)
        body = {
            "apiVersion": api.API_VERSION,
            "kind": "E2BTemplate",
            "metadata": {"name": resource_name(name), "labels": dict(labels or {})},
            "spec": spec,
        }

        async def register(objects: Objects) -> E2BTemplate:
            for _ in range(5):
                current = await objects.find(PLURAL, body["metadata"]["name"])
                try:
                    if current is None:
                        return E2BTemplate.from_wire(await objects.create(PLURAL, body))
                    current["metadata"].setdefault("labels", {}).update(body["metadata"]["labels"])
                    current["spec"] = spec
                    return E2BTemplate.from_wire(await objects.replace(PLURAL, current))
                except Conflict:
                    continue
            raise ToolkitError(f"template {name!r} keeps changing; try again")

        return self._run(register)

    def delete_template(self, name: str, wait_seconds: float = 60.0) -> None:
        """Delete the template and wait until it is gone (the operator finalizes it first);
        NotFoundError when it does not exist."""
        rname = resource_name(name)

        async def delete(objects: Objects) -> None:
            await objects.delete(PLURAL, rname)
            deadline = time.monotonic() + wait_seconds
            while await objects.find(PLURAL, rname) is not None:
                if time.monotonic() > deadline:
                    raise ToolkitError(f"template {name!r} is still being deleted")
                await asyncio.sleep(0.3)

        self._run(delete)

    def _run(self, fn: Callable[[Objects], Awaitable[T]]) -> T:
        async def call() -> T:
            api_client = await connect(self.kubeconfig, self.context)
            async with api_client:
                return await fn(Objects(api_client, self.namespace))

        return run_sync(call)


async def _list(objects: Objects) -> list[E2BTemplate]:
    return [E2BTemplate.from_wire(o) for o in await objects.list(PLURAL)]
