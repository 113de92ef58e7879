"""Shared API pieces: conditions, references, environment variables, list-map markers."""

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import Field, PlainSerializer, WithJsonSchema
from pydantic.json_schema import GetJsonSchemaHandler, JsonSchemaValue
from pydantic_core import CoreSchema

from .base import K8sModel, StatusModel
from .rules import Rule, validations

DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
MAX_ENV = 128


def _rfc3339(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Timestamp = Annotated[
    datetime,
    PlainSerializer(_rfc3339, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""A metav1.Time: RFC 3339, seconds precision, UTC."""


class ListMap:
    """Marks a list as a list-map: items unique by `keys`, which server-side apply merges by."""

    def __init__(self, *keys: str) -> None:
        self.keys = list(keys)

    def __get_pydantic_json_schema__(
        self, core: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core)
        schema["x-kubernetes-list-type"] = "map"
        schema["x-kubernetes-list-map-keys"] = self.keys
        return schema


def duplicates(items: list[Any], keys: list[str]) -> list[tuple[int, tuple[Any, ...]]]:
    """(index, key) of list-map items repeating an earlier key; the apiserver rejects them."""
    seen: set[tuple[Any, ...]] = set()
    dup: list[tuple[int, tuple[Any, ...]]] = []
    for i, item in enumerate(items):
        if isinstance(item, dict):
            key = tuple(item.get(k) for k in keys)
            if key in seen:
                dup.append((i, key))
            seen.add(key)
    return dup


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(StatusModel):
    """One aspect of the object's current state (the metav1.Condition shape)."""

    type: str = Field(
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
    )
    """Condition type in CamelCase, e.g. Ready, Reconciling, Stalled."""
    status: ConditionStatus
    """True, False or Unknown."""
    observed_generation: int | None = Field(default=None, ge=0)
    """metadata.generation the condition was computed from; lower means stale."""
    last_transition_time: Timestamp
    """When status last changed (not when reason or message changed)."""
    reason: str = Field(
        min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
    )
    """Stable CamelCase identifier of the cause, e.g. BuildInProgress."""
    message: str = Field(default="", max_length=32768)
    """Human-readable detail."""


Conditions = Annotated[list[Condition], ListMap("type"), Field(max_length=16)]


class ObjectRef(K8sModel):
    """A reference to an object in the same namespace."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)
    """Name of the referenced object."""


class SecretKeySelector(K8sModel):
    """A key of a Secret in the same namespace."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)
    """Name of the Secret."""
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")
    """Key within the Secret's data."""


class EnvVarSource(K8sModel):
    """Where an environment variable's value comes from."""

    secret_key_ref: SecretKeySelector
    """Take the value from a Secret key."""


class TemplateEnvVar(K8sModel):
    """A literal environment variable baked into the template."""

    name: str = Field(max_length=256, pattern=ENV_NAME)
    """Variable name: letters, digits and underscores, not starting with a digit."""
    value: str = Field(default="", max_length=32768)
    """Literal value."""


@validations(
    Rule(
        "has(self.value) != has(self.valueFrom)",
        "set exactly one of value or valueFrom",
    )
)
class EnvVar(K8sModel):
    """An environment variable for sandbox instances: a literal value or a Secret key."""

    name: str = Field(max_length=256, pattern=ENV_NAME)
    """Variable name: letters, digits and underscores, not starting with a digit."""
    value: str | None = Field(default=None, max_length=32768)
    """Literal value; exclusive with valueFrom."""
    value_from: EnvVarSource | None = None
    """Read the value from a Secret; exclusive with value."""
