"""The seed's model names (TemplateConfig and its parts), over the E2BTemplate API models.

`TemplateBuilder.build()` returns a TemplateConfig; `to_spec()` converts it to the CRD's
spec. The parts are the API's own models (the same fields, validation and defaults), with the
seed's names, plus TemplateMetadata (the catalogue fields the CRD keeps at the top of spec)
and `env_vars` as a {name: value} dict.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from e2b_operator import api
from e2b_operator.api import (
    ClaudeCodeConfig,
    ClaudeFlowConfig,
    E2BTemplateSpec,
    TemplateFiles,
    TemplateType,
    TradingAgentConfig,
)
from e2b_operator.api import Hooks as TemplateHooks

METADATA_FIELDS = ("description", "version", "author", "tags", "category")


class TemplateRequirements(api.Requirements):
    """Runtime and resources; env_vars ({name: value}) is the seed's form of env."""

    @model_validator(mode="before")
    @classmethod
    def _env_vars(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("env_vars"), dict):
            data = dict(data)
            env = [{"name": k, "value": str(v)} for k, v in data.pop("env_vars").items()]
            data["env"] = [*data.get("env", []), *env]
        return data

    @property
    def env_vars(self) -> dict[str, str]:
        return {e.name: e.value for e in self.env}


class TemplateMetadata(BaseModel):
    """Name and catalogue fields of a template."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str | None = None
    version: str = "1.0.0"
    author: str | None = None
    tags: list[str] = Field(default_factory=list)
    category: str | None = None


class TemplateConfig(BaseModel):
    """A whole template, with the seed's attribute names; `to_spec()` gives the CRD's spec."""

    model_config = ConfigDict(extra="forbid")

    template_type: TemplateType
    metadata: TemplateMetadata
    requirements: TemplateRequirements = Field(default_factory=TemplateRequirements)
    files: TemplateFiles
    hooks: TemplateHooks | None = None
    claude_flow: ClaudeFlowConfig | None = None
    claude_code: ClaudeCodeConfig | None = None
    trading_agent: TradingAgentConfig | None = None
    custom_config: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_spec(cls, spec: E2BTemplateSpec) -> TemplateConfig:
        meta = {f: getattr(spec, f) for f in METADATA_FIELDS}
        return cls(
            template_type=spec.type,
            metadata=TemplateMetadata(name=spec.display_name or "", **meta),
            requirements=TemplateRequirements.model_validate(spec.requirements.model_dump()),
            files=spec.files,
            hooks=spec.hooks,
            claude_flow=spec.claude_flow,
            claude_code=spec.claude_code,
            trading_agent=spec.trading_agent,
            custom_config=spec.custom_config or {},
        )

    def to_spec(self) -> E2BTemplateSpec:
        """The E2BTemplate spec (ValueError naming the field when the apiserver would refuse)."""
        meta = self.metadata
        spec: dict[str, Any] = {
            "type": self.template_type.value,
            "displayName": meta.name or None,
            **{f: getattr(meta, f) for f in METADATA_FIELDS},
            "requirements": api.Requirements.model_validate(self.requirements.model_dump()).wire(),
            "files": self.files.wire(),
            "hooks": self.hooks.wire() if self.hooks else None,
            "claudeFlow": self.claude_flow.wire() if self.claude_flow else None,
            "claudeCode": self.claude_code.wire() if self.claude_code else None,
            "tradingAgent": self.trading_agent.wire() if self.trading_agent else None,
            "customConfig": self.custom_config or None,
        }
        spec = {k: v for k, v in spec.items() if v is not None}
        found = api.spec_problems("E2BTemplate", spec)
        if found:
            raise api.InvalidObject("template", found)
        return E2BTemplateSpec.model_validate(spec)

    def wire(self) -> dict[str, Any]:
        """The spec in wire form (camelCase), as stored in the E2BTemplate."""
        return self.to_spec().wire()


__all__ = [
    "ClaudeCodeConfig",
    "ClaudeFlowConfig",
    "TemplateConfig",
    "TemplateFiles",
    "TemplateHooks",
    "TemplateMetadata",
    "TemplateRequirements",
    "TradingAgentConfig",
]
