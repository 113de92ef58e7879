"""TemplateBuilder: the original template system's fluent builder, over the E2BTemplate API.

The builder collects a spec in its wire form; validation is the API's own
(`e2b_operator.api.spec_problems`: the pydantic model plus the CRD's CEL rules), so a chain
the builder accepts is exactly one the kube-apiserver accepts.
"""

import copy
import re
from collections.abc import Mapping
from enum import Enum
from typing import Any, Self

import yaml
from pydantic import BaseModel

from e2b_operator import api
from e2b_operator.api import (
    ClaudeCodeConfig,
    ClaudeFlowConfig,
    E2BTemplateSpec,
    Hooks,
    Requirements,
    TemplateType,
    TradingAgentConfig,
)
from e2b_operator.api.meta import DNS_SUBDOMAIN

from ..api import layout
from .mainscripts import main_files
from .models import TemplateConfig

KIND = "E2BTemplate"


def wire_keys(model: type[BaseModel], values: Mapping[str, Any]) -> dict[str, Any]:
    """Rename a section's snake_case (or camelCase) keys to the model's wire names.

    Unknown keys pass through unchanged, so validation reports them under the name given.
    """
    out = {}
    for key, value in values.items():
        field = model.model_fields.get(key)
        out[field.alias if field and field.alias else key] = plain(value)
    return out


def plain(value: Any) -> Any:
    """Enums to their values, tuples to lists, mappings to dicts (recursively)."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def ordered(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    """Keys in the model's field order (unknown keys last), nested sections too."""
    out = {}
    for name, field in model.model_fields.items():
        key = field.alias or name
        if key in data:
            sub = _section_model(field.annotation)
            value = data[key]
            out[key] = ordered(sub, value) if sub and isinstance(value, dict) else value
    return out | {k: v for k, v in data.items() if k not in out}


def _section_model(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def slug(text: str) -> str:
    """A DNS-1123 name from a display name: 'Momentum Strategy' -> 'momentum-strategy'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:63].rstrip("-")


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (scripts) as literal blocks."""


_BlockDumper.add_representer(
    str,
    lambda dumper, value: dumper.represent_scalar(
        "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None
    ),
)


def dump_yaml(obj: Any) -> str:
    return yaml.dump(obj, Dumper=_BlockDumper, sort_keys=False, width=100, allow_unicode=True)


class TemplateBuilder:
    """Fluent builder of an E2BTemplate spec, with the seed's method names."""

    def __init__(self) -> None:
        self._spec: dict[str, Any] = {}

    # -- presets: complete templates running the collection's script for their type ---------

    @classmethod
    def create_python_template(cls, name: str, description: str) -> Self:
        """A Python base template (the collection's python_base.py as main script)."""
        return (
            cls()
            .set_type(TemplateType.PYTHON_BASE)
            .set_metadata(name, description)
            .set_hooks(health_check=layout.health_check("python"))
            .use_collection_script("python_base.py")
        )

    @classmethod
    def create_node_template(cls, name: str, description: str) -> Self:
        """A Node.js 20 base template (the collection's node_base.js as main script)."""
        return (
            cls()
            .set_type(TemplateType.NODE_BASE)
            .set_metadata(name, description)
            .set_requirements(runtime=api.Runtime.NODE_20)
            .set_hooks(health_check=layout.health_check("node"))
            .use_collection_script("node_base.js")
        )

    @classmethod
    def create_trading_template(cls, name: str, strategy_type: str) -> Self:
        """A trading agent template for one strategy (paper trading, RSI/MACD/SMA)."""
        return (
            cls()
            .set_type(TemplateType.TRADING_AGENT)
            .set_metadata(
                name,
                f"Trading agent running the {strategy_type} strategy",
                tags=["trading", strategy_type],
                category="trading",
            )
            .set_trading_agent_config(
                strategy_type=strategy_type,
                execution_mode="paper_trading",
                indicators=["RSI", "MACD", "SMA"],
            )
            .set_hooks(health_check=layout.health_check("python"))
            .use_collection_script("trading_agent.py")
        )

    @classmethod
    def create_claude_flow_template(cls, name: str, agent_types: list[str]) -> Self:
        """A Claude-Flow swarm template spawning the given agent types."""
        return (
            cls()
            .set_type(TemplateType.CLAUDE_FLOW_SWARM)
            .set_metadata(
                name,
                f"Claude-Flow swarm of {', '.join(agent_types)}",
                tags=["claude-flow", "swarm"],
                category="claude-flow",
            )
            .set_claude_flow_config(agent_types=agent_types, max_agents=max(5, len(agent_types)))
            .set_hooks(health_check=layout.health_check("python"))
            .use_collection_script("claude_flow_swarm.py")
        )

    @classmethod
    def create_claude_code_template(
        cls, name: str, description: str | None = None, sparc_mode: str = "full"
    ) -> Self:
        """A Claude Code template: SPARC development, or code review when sparc_mode is review."""
        review = sparc_mode == "review"
        return (
            cls()
            .set_type(
                TemplateType.CLAUDE_CODE_REVIEWER if review else TemplateType.CLAUDE_CODE_SPARC
            )
            .set_metadata(
                name,
                description or ("Automated code review" if review else "SPARC development"),
                tags=["claude-code", "review" if review else "sparc"],
                category="claude-code",
            )
            .set_claude_code_config(
                sparc_mode=sparc_mode,
                linters=["pyflakes", "mccabe", "bandit"] if review else [],
            )
            .set_hooks(health_check=layout.health_check("python"))
            .use_collection_script("claude_code_reviewer.py" if review else "claude_code_sparc.py")
        )

    # -- setters ---------------------------------------------------------------------------

    def set_type(self, template_type: TemplateType | str) -> Self:
        self._spec["type"] = plain(template_type)
        return self

    def set_metadata(
        self,
        name: str | None = None,
        description: str | None = None,
        version: str | None = None,
        author: str | None = None,
        tags: list[str] | None = None,
        category: str | None = None,
    ) -> Self:
        """Display name, description and catalogue fields (None leaves a field as it is)."""
        values = {
            "displayName": name,
            "description": description,
            "version": version,
            "author": author,
            "tags": tags,
            "category": category,
        }
        self._spec.update({k: plain(v) for k, v in values.items() if v is not None})
        return self

    def set_requirements(self, **requirements: Any) -> Self:
        """Runtime and resources, merged: runtime, cpu_cores, memory_mb, storage_gb,
        gpu_enabled, network_access, python_packages, node_packages, system_packages,
        env_vars ({name: value}) or env ([{name, value}])."""
        env_vars = requirements.pop("env_vars", None)
        if isinstance(env_vars, Mapping):
            env_vars = [{"name": k, "value": v} for k, v in env_vars.items()]
        requirements.setdefault("env", env_vars)
        return self._merge("requirements", Requirements, requirements)

    def set_main_script(self, script: str) -> Self:
        """The entry point (/app/main.py or /app/main.js); it gets its JSON config in argv[1]."""
        self._spec.setdefault("files", {})["mainScript"] = script
        return self

    def use_collection_script(self, filename: str) -> Self:
        """Make a collection script (e.g. trading_agent.py) the main script, with the helper
        module it imports."""
        main, modules = main_files(filename)
        self.set_main_script(main)
        for path, content in modules.items():
            self.add_module(path, content)
        return self

    def add_file(self, path: str, content: str, section: str = "data") -> Self:
        """Add a file to one of the files maps: modules, configs, data or scripts."""
        self._spec.setdefault("files", {}).setdefault(section, {})[path] = content
        return self

    def add_module(self, path: str, content: str) -> Self:
        """Add an importable module next to the main script."""
        return self.add_file(path, content, "modules")

    def set_hooks(self, **hooks: str | None) -> Self:
        """Lifecycle commands, merged: pre_install, post_install, pre_start, health_check,
        cleanup."""
        return self._merge("hooks", Hooks, hooks)

    def set_claude_flow_config(self, **config: Any) -> Self:
        """Swarm settings, merged: swarm_topology, max_agents, coordination_mode,
        enable_neural, enable_memory, agent_types, hooks."""
        return self._merge("claudeFlow", ClaudeFlowConfig, config)

    def set_claude_code_config(self, **config: Any) -> Self:
        """Claude Code settings, merged: sparc_mode, phases, tools, linters, model, max_turns."""
        return self._merge("claudeCode", ClaudeCodeConfig, config)

    def set_trading_agent_config(self, **config: Any) -> Self:
        """Trading settings, merged: strategy_type, symbols, risk_params, execution_mode,
        data_sources, indicators, backtest_enabled."""
        return self._merge("tradingAgent", TradingAgentConfig, config)

    def set_custom_config(self, config: Mapping[str, Any] | None = None, **values: Any) -> Self:
        """Free-form configuration passed through to the template, merged."""
        custom = self._spec.setdefault("customConfig", {})
        custom.update(plain(dict(config or {}, **values)))
        return self

    def _merge(self, key: str, model: type[BaseModel], values: Mapping[str, Any]) -> Self:
        section = self._spec.setdefault(key, {})
        section.update(wire_keys(model, {k: v for k, v in values.items() if v is not None}))
        return self

    # -- results ---------------------------------------------------------------------------

    def draft(self) -> dict[str, Any]:
        """The spec as set so far, in wire form (camelCase), not validated."""
        return ordered(E2BTemplateSpec, copy.deepcopy(self._spec))

    def validate(self) -> list[str]:
        """Every problem, one readable line each (the CRD's rules); [] when valid."""
        return api.spec_problems(KIND, self._spec)

    def build(self) -> TemplateConfig:
        """The template with the seed's attribute names (`to_spec()` for the CRD's spec), or
        ValueError (api.InvalidObject) listing every problem."""
        found = self.validate()
        if found:
            raise api.InvalidObject("template", found)
        return TemplateConfig.from_spec(E2BTemplateSpec.model_validate(self._spec))

    def to_manifest(
        self,
        name: str | None = None,
        namespace: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """The E2BTemplate object (only the fields set; the apiserver applies defaults).

        name defaults to a slug of the display name; raises ValueError when invalid.
        """
        self.build()
        name = name or slug(self._spec.get("displayName", ""))
        if not re.match(DNS_SUBDOMAIN, name) or len(name) > 63:
            raise ValueError(f"invalid template name {name!r}: use lowercase a-z, 0-9 and '-'")
        metadata: dict[str, Any] = {"name": name}
        if namespace:
            metadata["namespace"] = namespace
        if labels:
            metadata["labels"] = dict(labels)
        return {
            "apiVersion": api.API_VERSION,
            "kind": KIND,
            "metadata": metadata,
            "spec": self.draft(),
        }

    def to_yaml(
        self,
        name: str | None = None,
        namespace: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> str:
        """to_manifest() as YAML, scripts as literal blocks."""
        return dump_yaml(self.to_manifest(name, namespace, labels))
