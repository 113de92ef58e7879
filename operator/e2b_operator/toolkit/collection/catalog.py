"""The seed's seven templates, each built through TemplateBuilder's presets.

Every main script is a package file next to this module that runs offline by default
(synthetic market data, dry-run agents, local analysers) and uses the real CLIs and APIs when
a key and network are there. Packages the seed describes are installed at build: numpy and
pandas in the Python templates, common npm packages in the Node one, Claude Code
(`@anthropic-ai/claude-code`) in the SPARC and reviewer templates, pyflakes, mccabe and
bandit in the reviewer, and the real `claude-flow` CLI in the Claude-Flow templates (without
its optional native add-ons and install scripts, which cost minutes per build and are not needed
by its hooks): the swarm runs its claudeFlow.hooks through it, offline too.
"""

from collections.abc import Callable

from e2b_operator.api import TemplateType

from ..builder import TemplateBuilder

DATA_SCIENCE = ["numpy", "pandas"]
NODE_COMMON = ["lodash", "axios", "dayjs", "zod"]
CLAUDE_CODE = ["@anthropic-ai/claude-code"]
REVIEW_LINTERS = ["syntax", "pyflakes", "mccabe", "bandit", "style", "todo"]
REVIEW_PACKAGES = ["pyflakes", "mccabe", "bandit"]
CLAUDE_FLOW_VERSION = "3.43.0"
CLAUDE_FLOW_INSTALL = (  # into /app/node_modules; npm's download cache stays out of the layer
    "cd /app && npm install --cache /tmp/npm-cache --ignore-scripts --omit=optional "
    f"--no-audit --no-fund claude-flow@{CLAUDE_FLOW_VERSION} && rm -rf /tmp/npm-cache"
)
SEED_HOOKS = {  # the seed's claudeFlow.hooks
    "pre-task": "npx claude-flow@alpha hooks pre-task",
    "post-task": "npx claude-flow@alpha hooks post-task",
}


def python_base() -> TemplateBuilder:
    return (
        TemplateBuilder.create_python_template(
            "Python Base",
            "Python environment with numpy and pandas: echoes a message and describes data",
        )
        .set_metadata(tags=["python", "base", "data-science"], category="base")
        .set_requirements(python_packages=DATA_SCIENCE)
    )


def node_base() -> TemplateBuilder:
    return (
        TemplateBuilder.create_node_template(
            "Node.js Base",
            "Node.js 20 environment with lodash, axios, dayjs and zod: echoes a message and "
            "computes statistics",
        )
        .set_metadata(tags=["node", "javascript", "base"], category="base")
        .set_requirements(node_packages=NODE_COMMON)
    )


def trading_agent() -> TemplateBuilder:
    return (
        TemplateBuilder.create_trading_template("Trading Agent Base", "momentum")
        .set_metadata(
            description="Trading agent: RSI, MACD and SMA signals with risk parameters and "
            "backtests, on synthetic (offline) or Yahoo Finance market data",
            tags=["trading", "momentum", "backtest"],
        )
        .set_requirements(memory_mb=2048, python_packages=DATA_SCIENCE)
        .set_trading_agent_config(
            symbols=["AAPL", "GOOGL", "MSFT"],
            risk_params={"max_position_size": 0.1, "stop_loss": 0.02, "take_profit": 0.04},
            execution_mode="paper_trading",
            data_sources=["synthetic", "yahoo"],
            indicators=["RSI", "MACD", "SMA"],
            backtest_enabled=True,
        )
    )


def claude_flow_swarm() -> TemplateBuilder:
    return (
        TemplateBuilder.create_claude_flow_template(
            "Claude-Flow Swarm Orchestrator",
            agent_types=["coordinator", "researcher", "coder", "analyst", "tester"],
        )
        .set_metadata(
            description="Multi-agent coordination: topology, task decomposition and message "
            "passing, with Claude-Flow's hooks; a simulated swarm offline, Claude agents with "
            "ANTHROPIC_API_KEY",
            tags=["claude-flow", "swarm", "orchestration"],
        )
        .set_claude_flow_config(
            swarm_topology="mesh",
            max_agents=8,
            coordination_mode="collaborative",
            enable_memory=True,
            hooks=SEED_HOOKS,
        )
        .set_hooks(post_install=CLAUDE_FLOW_INSTALL)
    )


def claude_flow_neural() -> TemplateBuilder:
    return (
        TemplateBuilder.create_claude_flow_template(
            "Claude-Flow Neural Agent", agent_types=["pattern_learner"]
        )
        .set_type(TemplateType.CLAUDE_FLOW_NEURAL)
        .set_metadata(
            description="Pattern recognition: trains a pure-Python logistic regression or "
            "perceptron on a series and predicts its next move",
            tags=["claude-flow", "neural", "pattern-recognition"],
        )
        .set_claude_flow_config(swarm_topology="star", enable_neural=True, enable_memory=True)
        .set_hooks(post_install=CLAUDE_FLOW_INSTALL)
        .use_collection_script("claude_flow_neural.py")
    )


def claude_code_sparc() -> TemplateBuilder:
    return (
        TemplateBuilder.create_claude_code_template(
            "Claude Code SPARC Developer",
            "SPARC methodology: Specification, Pseudocode, Architecture, Refinement and "
            "Completion, generating code whose tests really run; Claude Code with a key",
        )
        .set_metadata(tags=["claude-code", "sparc", "tdd"])
        .set_requirements(node_packages=CLAUDE_CODE)
        .set_claude_code_config(tools=["Read", "Edit", "Bash"])
    )


def claude_code_reviewer() -> TemplateBuilder:
    return (
        TemplateBuilder.create_claude_code_template(
            "Claude Code Reviewer",
            "Automated code review with real linters (pyflakes, mccabe, bandit), syntax, "
            "style and TODO checks, scored; Claude Code's review too with a key",
            sparc_mode="review",
        )
        .set_metadata(tags=["claude-code", "review", "linting", "security"])
        .set_requirements(python_packages=REVIEW_PACKAGES, node_packages=CLAUDE_CODE)
        .set_claude_code_config(linters=REVIEW_LINTERS)
    )


TEMPLATES: dict[str, Callable[[], TemplateBuilder]] = {
    "python-base": python_base,
    "node-base": node_base,
    "trading-agent": trading_agent,
    "claude-flow-swarm": claude_flow_swarm,
    "claude-flow-neural": claude_flow_neural,
    "claude-code-sparc": claude_code_sparc,
    "claude-code-reviewer": claude_code_reviewer,
}
"""Template name (metadata.name) -> a builder of it."""
