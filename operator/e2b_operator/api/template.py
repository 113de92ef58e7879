"""E2BTemplate: a reusable sandbox template (the seed's TemplateConfig) and its build status."""

from enum import StrEnum
from typing import Annotated, Any, Literal, get_args

from pydantic import ConfigDict, Field

from .base import K8sModel, StatusModel
from .credentials import Credentials
from .meta import Conditions, ListMap, TemplateEnvVar, Timestamp
from .rules import Rule, validations

Script = Annotated[str, Field(max_length=262144)]
FileMap = Annotated[dict[str, Script], Field(max_length=64)]
Name = Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][-A-Za-z0-9_.]*$")]
Package = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^\S+$")]
Hook = Annotated[str, Field(max_length=16384)]


class TemplateType(StrEnum):
    """Kind of template, as in the seed's TemplateType."""

    PYTHON_BASE = "pythonBase"
    NODE_BASE = "nodeBase"
    TRADING_AGENT = "tradingAgent"
    CLAUDE_FLOW_SWARM = "claudeFlowSwarm"
    CLAUDE_FLOW_NEURAL = "claudeFlowNeural"
    CLAUDE_CODE_SPARC = "claudeCodeSparc"
    CLAUDE_CODE_REVIEWER = "claudeCodeReviewer"
    CUSTOM = "custom"


class Runtime(StrEnum):
    """Language runtime of the sandbox image."""

    PYTHON_3_10 = "python3.10"
    PYTHON_3_11 = "python3.11"
    PYTHON_3_12 = "python3.12"
    PYTHON_3_13 = "python3.13"
    NODE_18 = "node18"
    NODE_20 = "node20"
    NODE_22 = "node22"


class Requirements(K8sModel):
    """Runtime and resources of each sandbox built from the template."""

    runtime: Runtime = Runtime.PYTHON_3_10
    """Language runtime: python3.10-python3.13 or node18/node20/node22."""
    cpu_cores: int = Field(default=2, ge=1, le=64)
    """vCPUs per sandbox (1-64)."""
    memory_mb: int = Field(default=1024, ge=128, le=65536, alias="memoryMB")
    """Memory per sandbox in MiB (128-65536)."""
    storage_gb: int = Field(default=1, ge=1, le=1024, alias="storageGB")
    """Disk per sandbox in GiB (1-1024). E2B gives the disk of the team's plan (10 GiB on
    Hobby); more is reported as condition FieldsIgnored and a Warning event."""
    gpu_enabled: bool = False
    """Request a GPU for the sandbox. E2B has none: the template reports condition
    FieldsIgnored and a Warning event, and is built for CPU."""
    network_access: bool = True
    """Allow outbound network access from the sandbox."""
    python_packages: list[Package] = Field(default_factory=list, max_length=256)
    """pip requirement specifiers installed at build time, e.g. pandas==2.2.3."""
    node_packages: list[Package] = Field(default_factory=list, max_length=256)
    """npm packages installed at build time, e.g. axios@1.7.9."""
    system_packages: list[Package] = Field(default_factory=list, max_length=256)
    """apt packages installed at build time, e.g. curl."""
    env: Annotated[list[TemplateEnvVar], ListMap("name")] = Field(
        default_factory=list, max_length=128
    )
    """Environment variables baked into the template; names must be unique."""


class TemplateFiles(K8sModel):
    """Files written into the sandbox; maps are relative path -> content."""

    main_script: Script = Field(min_length=1, pattern=r"\S")
    """Entry point run for every execution; receives the instance config as JSON in argv[1]."""
    modules: FileMap = Field(default_factory=dict)
    """Importable code modules, path -> source."""
    configs: FileMap = Field(default_factory=dict)
    """Configuration files, path -> content."""
    data: FileMap = Field(default_factory=dict)
    """Data files, path -> content."""
    scripts: FileMap = Field(default_factory=dict)
    """Helper scripts, path -> content."""


class Hooks(K8sModel):
    """Shell commands run at lifecycle points of the sandbox."""

    pre_install: Hook | None = None
    """Before packages are installed, e.g. apt-get update."""
    post_install: Hook | None = None
    """After packages are installed."""
    pre_start: Hook | None = None
    """Before the main script starts."""
    health_check: Hook | None = None
    """Exits 0 when the sandbox is healthy, e.g. curl -f http://localhost:8080/health."""
    cleanup: Hook | None = None
    """When the sandbox is torn down."""


@validations(
    Rule(
        "!has(self.agentTypes) || size(self.agentTypes) <= self.maxAgents",
        "agentTypes has more entries than maxAgents: raise maxAgents or list fewer agent types",
        field_path=".agentTypes",
    )
)
class ClaudeFlowConfig(K8sModel):
    """Claude-Flow swarm settings."""

    swarm_topology: Literal["mesh", "hierarchical", "ring", "star"] = "mesh"
    """How agents are connected: mesh, hierarchical, ring or star."""
    max_agents: int = Field(default=5, ge=1, le=100)
    """Upper bound on concurrently running agents (1-100)."""
    coordination_mode: str = Field(default="collaborative", min_length=1, max_length=63)
    """Coordination strategy, e.g. collaborative."""
    enable_neural: bool = False
    """Enable neural pattern learning (GPU-accelerated where available)."""
    enable_memory: bool = True
    """Enable the swarm's shared memory."""
    agent_types: list[Name] = Field(default_factory=list, max_length=32)
    """Agent roles to spawn, e.g. researcher, analyst."""
    hooks: dict[str, Hook] = Field(default_factory=dict, max_length=16)
    """Claude-Flow hook name -> command, e.g. pre-task: npx claude-flow@alpha hooks pre-task."""


SparcPhase = Literal["specification", "pseudocode", "architecture", "refinement", "completion"]


class ClaudeCodeConfig(K8sModel):
    """Claude Code settings (SPARC development or code review)."""

    sparc_mode: Literal["full", "tdd", "review"] = "full"
    """SPARC workflow: full (all phases), tdd (test-first refinement) or review only."""
    phases: list[SparcPhase] = Field(
        default_factory=lambda: list(get_args(SparcPhase)), max_length=5
    )
    """SPARC phases to run, in order."""
    tools: list[Name] = Field(default_factory=list, max_length=64)
    """Claude Code tools allowed in the sandbox, e.g. Read, Edit, Bash."""
    linters: list[Name] = Field(default_factory=list, max_length=32)
    """Linters run on the code, e.g. ruff, eslint."""
    model: str | None = Field(default=None, max_length=128)
    """Claude model name; the E2B/Claude default when empty."""
    max_turns: int | None = Field(default=None, ge=1, le=1000)
    """Upper bound on agent turns per task."""


@validations(
    Rule(
        "self.executionMode != 'backtest' || self.backtestEnabled",
        "executionMode backtest needs backtestEnabled: true",
        field_path=".backtestEnabled",
    )
)
class TradingAgentConfig(K8sModel):
    """Trading agent settings."""

    strategy_type: Name
    """Strategy identifier, e.g. momentum, rsi_signals."""
    symbols: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9.^=/:_-]{1,32}$")]] = Field(
        default_factory=list, max_length=256
    )
    """Instruments to trade, e.g. AAPL, BTC-USD."""
    risk_params: dict[str, float] = Field(default_factory=dict, max_length=32)
    """Numeric risk limits, e.g. max_position_size: 0.1, stop_loss: 0.02."""
    execution_mode: Literal["paper_trading", "live_trading", "backtest"] = "paper_trading"
    """paper_trading, live_trading or backtest."""
    data_sources: list[Name] = Field(default_factory=list, max_length=16)
    """Market data providers, e.g. yfinance, alpaca."""
    indicators: list[Name] = Field(default_factory=list, max_length=64)
    """Technical indicators, e.g. RSI, MACD, SMA."""
    backtest_enabled: bool = False
    """Run a backtest before trading."""


@validations(
    Rule(
        "self.type != 'tradingAgent' || has(self.tradingAgent)",
        "type tradingAgent needs a tradingAgent section (strategyType, symbols, ...)",
        field_path=".tradingAgent",
        reason="FieldValueRequired",
    ),
    Rule(
        "!self.type.startsWith('claudeFlow') || has(self.claudeFlow)",
        "types claudeFlowSwarm and claudeFlowNeural need a claudeFlow section",
        field_path=".claudeFlow",
        reason="FieldValueRequired",
    ),
    Rule(
        "!self.type.startsWith('claudeCode') || has(self.claudeCode)",
        "types claudeCodeSparc and claudeCodeReviewer need a claudeCode section",
        field_path=".claudeCode",
        reason="FieldValueRequired",
    ),
    Rule(
        "self.type != 'claudeFlowNeural' || !has(self.claudeFlow) || self.claudeFlow.enableNeural",
        "type claudeFlowNeural needs claudeFlow.enableNeural: true",
        field_path=".claudeFlow.enableNeural",
    ),
    Rule(
        "self.type != 'claudeCodeReviewer' || !has(self.claudeCode)"
        " || (has(self.claudeCode.linters) && size(self.claudeCode.linters) > 0)",
        "type claudeCodeReviewer needs at least one linter in claudeCode.linters",
        field_path=".claudeCode.linters",
        reason="FieldValueRequired",
    ),
    Rule(
        "self.type != 'pythonBase' || self.requirements.runtime.startsWith('python')",
        "type pythonBase needs a python runtime: set requirements.runtime to python3.10-python3.13",
        field_path=".requirements.runtime",
    ),
    Rule(
        "self.type != 'nodeBase' || self.requirements.runtime.startsWith('node')",
        "type nodeBase needs a node runtime: set requirements.runtime to node18, node20 or node22",
        field_path=".requirements.runtime",
    ),
)
class E2BTemplateSpec(K8sModel):
    """Desired state of an E2BTemplate: what to build into an E2B sandbox template."""

    type: TemplateType
    """Template kind: pythonBase, nodeBase, tradingAgent, claudeFlowSwarm, claudeFlowNeural,
    claudeCodeSparc, claudeCodeReviewer or custom."""
    display_name: str | None = Field(default=None, max_length=253)
    """Human-friendly name; metadata.name when empty."""
    description: str | None = Field(default=None, max_length=4096)
    """What the template does."""
    version: str = Field(default="1.0.0", min_length=1, max_length=64)
    """Template version, e.g. 1.2.0."""
    author: str | None = Field(default=None, max_length=253)
    """Author or owning team."""
    tags: list[Name] = Field(default_factory=list, max_length=32)
    """Search tags."""
    category: str | None = Field(default=None, max_length=63)
    """Catalogue category, e.g. trading, data-processing."""
    requirements: Requirements = Field(default_factory=Requirements)
    """Runtime, resources, packages and environment."""
    files: TemplateFiles
    """The main script and other files."""
    hooks: Hooks | None = None
    """Lifecycle shell commands."""
    claude_flow: ClaudeFlowConfig | None = None
    """Claude-Flow settings; required by claudeFlowSwarm and claudeFlowNeural."""
    claude_code: ClaudeCodeConfig | None = None
    """Claude Code settings; required by claudeCodeSparc and claudeCodeReviewer."""
    trading_agent: TradingAgentConfig | None = None
    """Trading settings; required by tradingAgent."""
    custom_config: dict[str, Any] | None = None
    """Free-form configuration passed through to the template unchanged."""
    credentials: Credentials | None = None
    """E2B credentials from a Secret in this namespace; the operator's own when unset.
    The template is built in that E2B team; deployments and executions of it must name the
    same credentials."""


TemplatePhase = Literal["Pending", "Building", "Ready", "Failed", "Deleting"]


class E2BTemplateStatus(StatusModel):
    """Observed state of an E2BTemplate, written by the operator."""

    phase: TemplatePhase | None = None
    """Pending, Building, Ready, Failed or Deleting."""
    observed_generation: int | None = Field(default=None, ge=0)
    """metadata.generation last reconciled."""
    conditions: Conditions = Field(default_factory=list)
    """Ready, Reconciling, Stalled and Built conditions, and FieldsIgnored (True) naming spec
    fields the backend cannot honour, e.g. gpuEnabled on E2B."""
    template_id: str | None = Field(default=None, max_length=253, alias="templateID")
    """E2B template ID of the current build."""
    build_id: str | None = Field(default=None, max_length=253, alias="buildID")
    """E2B build ID of the latest build."""
    spec_hash: str | None = Field(default=None, max_length=128)
    """Hash of the spec the current build was made from."""
    credentials_hash: str | None = Field(default=None, max_length=64)
    """Fingerprint of the E2B endpoint and API key the current build is known to be usable
    with (a truncated hash, never the key); a key of another E2B team rebuilds the template."""
    built_at: Timestamp | None = None
    """When the current build finished."""
    build_log_tail: list[Annotated[str, Field(max_length=2048)]] = Field(
        default_factory=list, max_length=100
    )
    """Last lines of the build log."""
    message: str | None = Field(default=None, max_length=32768)
    """Human-readable summary of the state."""


class E2BTemplate(K8sModel):
    """A reusable E2B sandbox template built by the operator."""

    model_config = ConfigDict(extra="ignore")

    api_version: Literal["e2b.dev/v1alpha1"] = "e2b.dev/v1alpha1"
    kind: Literal["E2BTemplate"] = "E2BTemplate"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: E2BTemplateSpec
    status: E2BTemplateStatus | None = None
