"""Base model: snake_case in Python, Kubernetes camelCase on the wire."""

from typing import Any, Self

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class K8sModel(BaseModel):
    """A part of a Kubernetes object; unknown fields are errors, as with kubectl's strict mode."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        use_attribute_docstrings=True,
        extra="forbid",
    )

    def wire(self) -> dict[str, Any]:
        """The JSON-ready wire form: camelCase keys, no nulls."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    @classmethod
    def from_wire(cls, data: Any) -> Self:
        """Parse a wire object; kopf's Body/Spec/Status mappings are accepted too."""
        return cls.model_validate(plain(data))


class StatusModel(K8sModel):
    """Status parts ignore unknown fields so an older operator can read a newer status."""

    model_config = ConfigDict(extra="ignore")


def plain(data: Any) -> Any:
    """Deep-copy mappings and sequences (e.g. kopf's views) into plain dicts and lists."""
    if hasattr(data, "keys"):
        return {str(k): plain(data[k]) for k in data}
    if isinstance(data, list | tuple):
        return [plain(v) for v in data]
    return data
