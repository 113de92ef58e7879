"""Validate E2B objects in Python exactly as the kube-apiserver would.

Field types, bounds, enums and patterns come from the pydantic models; CEL rules and list-map
uniqueness come from the generated CRD schema (the same text the apiserver enforces), evaluated
after applying the schema's defaults like the apiserver does.
"""

import copy
from typing import Any

from pydantic import BaseModel, ValidationError

from .base import plain
from .crdgen import API_VERSION, kind, openapi_schema
from .meta import duplicates
from .rules import from_schema

_HINTS = {
    "missing": "required field is missing; set it",
    "extra_forbidden": "unknown field; remove it or fix its spelling (see kubectl explain)",
}
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool}


class InvalidObject(ValueError):
    """An object that the apiserver would reject; `problems` lists why."""

    def __init__(self, name: str, problems: list[str]) -> None:
        super().__init__(f"invalid {name}:\n" + "\n".join(f"- {p}" for p in problems))
        self.problems = problems


def problems(kind_name: str, obj: Any) -> list[str]:
    """Every problem of a whole object (apiVersion, kind, spec, status), one line each."""
    obj = plain(obj)
    if not isinstance(obj, dict):
        return [f"expected a {kind_name} object, got {type(obj).__name__}"]
    out: list[str] = []
    if obj.get("apiVersion") != API_VERSION:
        out.append(f"apiVersion: must be {API_VERSION}, got {obj.get('apiVersion')!r}")
    if obj.get("kind") != kind_name:
        out.append(f"kind: must be {kind_name}, got {obj.get('kind')!r}")
    if "spec" not in obj:
        out.append("spec: required field is missing; set it")
    else:
        out += spec_problems(kind_name, obj["spec"])
    if obj.get("status") is not None:
        out += _part_problems(kind_name, "status", kind(kind_name).status, obj["status"])
    return out


def spec_problems(kind_name: str, spec: Any) -> list[str]:
    """Every problem of a spec alone, with paths starting at `spec`."""
    return _part_problems(kind_name, "spec", kind(kind_name).spec, plain(spec))


def validate(kind_name: str, obj: Any) -> BaseModel:
    """Parse a whole object into its model, or raise InvalidObject listing every problem."""
    found = problems(kind_name, obj)
    if found:
        raise InvalidObject(kind_name, found)
    return kind(kind_name).model.model_validate(plain(obj))


def defaulted(schema: dict[str, Any], value: Any) -> Any:
    """Apply the schema's defaults like the apiserver: nulls pruned, per level, parents first."""
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        out = {}
        for key, item in value.items():
            if item is None:
                continue
            sub = props.get(key) or (extra if isinstance(extra, dict) else {})
            out[key] = defaulted(sub, item)
        for key, sub in props.items():
            if key not in out and "default" in sub:
                out[key] = defaulted(sub, copy.deepcopy(sub["default"]))
        return out
    if isinstance(value, list) and "items" in schema:
        return [defaulted(schema["items"], v) for v in value]
    return value


def rule_problems(schema: dict[str, Any], value: Any, path: str) -> list[str]:
    """CEL rule failures and list-map duplicates in a (defaulted) wire value."""
    out: list[str] = []
    expected = _TYPES.get(schema.get("type", ""))
    if value is None or (expected and not isinstance(value, expected)):
        return out
    missing = [k for k in schema.get("required", []) if isinstance(value, dict) and k not in value]
    for item in schema.get("x-kubernetes-validations", []):
        rule = from_schema(item)
        # a rule reading a missing required field would only repeat "required field is
        # missing" (a fresh builder would list the rules of every type)
        if any(f"self.{key}" in rule.rule for key in missing):
            continue
        if not rule.holds(value):
            out.append(f"{path}{rule.field_path or ''}: {rule.message}")
    if isinstance(value, dict):
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = schema.get("properties", {}).get(key)
            if sub is not None:
                out += rule_problems(sub, item, f"{path}.{key}")
            elif isinstance(extra, dict):
                out += rule_problems(extra, item, f"{path}[{key}]")
    elif isinstance(value, list) and "items" in schema:
        if schema.get("x-kubernetes-list-type") == "map":
            keys = schema["x-kubernetes-list-map-keys"]
            for i, dup in duplicates(value, keys):
                shown = ", ".join(f"{k}={v!r}" for k, v in zip(keys, dup, strict=True))
                out.append(f"{path}[{i}]: duplicate entry {shown}; {'/'.join(keys)} must be unique")
        for i, item in enumerate(value):
            out += rule_problems(schema["items"], item, f"{path}[{i}]")
    return out


def _part_problems(kind_name: str, part: str, model: type[BaseModel], value: Any) -> list[str]:
    out: list[str] = []
    try:
        model.model_validate(value)
    except ValidationError as err:
        out += [_format(part, value, e) for e in err.errors(include_url=False)]
    schema = openapi_schema(kind_name)["properties"][part]
    out += rule_problems(schema, defaulted(schema, value), part)
    return list(dict.fromkeys(out))


def _format(part: str, value: Any, error: Any) -> str:
    path, node = part, value
    for step in error["loc"]:
        if isinstance(node, dict):
            path += f".{step}"
            node = node.get(step)
        elif isinstance(node, list) and isinstance(step, int):
            path += f"[{step}]"
            node = node[step] if step < len(node) else None
        # anything else is a pydantic union tag, not a path step
    message = _HINTS.get(error["type"], error["msg"])
    if error["type"] not in ("missing", "extra_forbidden"):
        message += f" (got {_short(error.get('input'))})"
    return f"{path}: {message}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
