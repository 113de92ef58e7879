"""Turn a pydantic JSON schema into a structural Kubernetes OpenAPI v3 schema.

Rules (apiextensions.k8s.io/v1): every $ref inlined, Optional[X] becomes X, every node typed
except int-or-string and preserve-unknown-fields nodes, no additionalProperties: false, free-form
dicts preserve unknown fields, empty-collection defaults dropped, nested-object defaults are
the children's defaults.
"""

import copy
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

DROPPED = ("title", "$defs")


class _WithFactoryDefaults(GenerateJsonSchema):
    """Also emit defaults produced by argument-less default factories."""

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            schema = {**schema, "default": factory()}  # type: ignore[call-arg]
            schema.pop("default_factory", None)
        return super().default_schema(schema)


def structural(model: type[BaseModel], *, keep_defaults: bool = True) -> dict[str, Any]:
    """The structural schema of `model`; `keep_defaults=False` drops defaults (for status)."""
    raw = model.model_json_schema(by_alias=True, schema_generator=_WithFactoryDefaults)
    return _convert(raw, raw.get("$defs", {}), keep_defaults)


def _convert(node: dict[str, Any], defs: dict[str, Any], keep_defaults: bool) -> dict[str, Any]:
    node = {k: v for k, v in node.items() if k not in DROPPED}
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        node = {**{k: v for k, v in target.items() if k not in DROPPED}, **node}
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"unsupported union in CRD schema: {options}")
        node = {**_convert(options[0], defs, keep_defaults), **node}
        if node.get("default", ...) is None:
            del node["default"]
    if "const" in node:
        node["enum"] = [node.pop("const")]
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {n: _convert(s, defs, keep_defaults) for n, s in value.items()}
        elif key == "items":
            out[key] = _convert(value, defs, keep_defaults)
        elif key == "additionalProperties":
            if isinstance(value, dict) and value:
                out[key] = _convert(value, defs, keep_defaults)
        elif key == "description":
            out[key] = " ".join(value.split())
        else:
            out[key] = value
    if (
        out.get("type") == "object"
        and "properties" not in out
        and "additionalProperties" not in out
    ):
        out["x-kubernetes-preserve-unknown-fields"] = True
    return dict(sorted(_fix_default(out, keep_defaults).items()))


def _fix_default(node: dict[str, Any], keep_defaults: bool) -> dict[str, Any]:
    if "default" not in node:
        return node
    default = node["default"]
    if not keep_defaults or default is None or default == [] or default == {}:
        del node["default"]
    elif isinstance(default, dict) and "properties" in node:
        # The children's own defaults, spelled out: CEL rules validate the default as written.
        props = node["properties"].items()
        node["default"] = {k: copy.deepcopy(sub["default"]) for k, sub in props if "default" in sub}
    return node
