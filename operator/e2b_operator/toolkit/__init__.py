"""The template toolkit: the original E2B template system's collection and Python API."""

from e2b_operator.api import Runtime, TemplateType

from .builder import TemplateBuilder
from .deployer import TemplateDeployer
from .models import (
    ClaudeCodeConfig,
    ClaudeFlowConfig,
    TemplateConfig,
    TemplateFiles,
    TemplateHooks,
    TemplateMetadata,
    TemplateRequirements,
    TradingAgentConfig,
)
from .registry import TemplateRegistry

RuntimeEnvironment = Runtime
"""The seed's name for the runtime enum."""

__all__ = [
    "ClaudeCodeConfig",
    "ClaudeFlowConfig",
    "Runtime",
    "RuntimeEnvironment",
    "TemplateBuilder",
    "TemplateConfig",
    "TemplateDeployer",
    "TemplateFiles",
    "TemplateHooks",
    "TemplateMetadata",
    "TemplateRegistry",
    "TemplateRequirements",
    "TemplateType",
    "TradingAgentConfig",
]
