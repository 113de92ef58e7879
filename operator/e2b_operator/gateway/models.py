"""Request bodies of the REST API (the seed's JSON bodies); unknown fields are refused."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeployRequest(Body):
    """Deploy a template: `config` goes to every instance (/app/instance.json and argv[1]),
    except `config.env_vars`, which becomes the sandboxes' environment."""

    template_id: str = Field(min_length=1, max_length=253, examples=["python_base"])
    config: dict[str, Any] = Field(default_factory=dict, examples=[{"env_vars": {"DEBUG": "1"}}])
    replicas: int = Field(default=1, ge=0, le=1000)
    name: str | None = Field(default=None, description="E2BDeployment name (default: random)")
    wait: bool = Field(default=True, description="wait until the deployment is Ready")


class ExecuteRequest(Body):
    """Run the template's main script with `input_data` as argv[1]."""

    input_data: dict[str, Any] = Field(default_factory=dict, examples=[{"symbol": "AAPL"}])
    timeout: int = Field(default=60, ge=1, le=3600, description="seconds the script may run")


class UpdateRequest(Body):
    """Roll the sandbox's deployment to another template."""

    template_id: str = Field(min_length=1, max_length=253)


class TemplateFields(Body):
    """What every builder endpoint accepts besides the factory's own arguments."""

    id: str | None = Field(default=None, description="E2BTemplate name (default: from name)")
    requirements: dict[str, Any] | None = Field(
        default=None,
        description="set_requirements() arguments: python_packages, memory_mb, cpu_cores, ...",
    )
    main_script: str | None = Field(
        default=None, description="the main script (default: the collection's script)"
    )
    hooks: dict[str, str] | None = Field(
        default=None, description="pre_install, post_install, pre_start, health_check, cleanup"
    )


class PythonTemplateRequest(TemplateFields):
    """TemplateBuilder.create_python_template(name, description)."""

    name: str = Field(min_length=1, max_length=253)
    description: str = Field(min_length=1)


class TradingTemplateRequest(TemplateFields):
    """TemplateBuilder.create_trading_template(name, strategy_type)."""

    name: str = Field(min_length=1, max_length=253)
    strategy_type: str = Field(min_length=1, examples=["momentum"])


class ClaudeFlowTemplateRequest(TemplateFields):
    """TemplateBuilder.create_claude_flow_template(name, agent_types)."""

    name: str = Field(min_length=1, max_length=253)
    agent_types: list[str] = Field(min_length=1, examples=[["researcher", "coder"]])
