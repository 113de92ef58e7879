"""The seed's seven templates, each built through TemplateBuilder with its main script.

Every main script is a package file next to this module, standard library only, and runs
offline by default (synthetic market data, dry-run agents), so each template builds and runs
in a sandbox with the internet off; the package lists stay empty for the same reason.
"""

from collections.abc import Callable
from importlib.resources import files

from e2b_operator.api import TemplateType

from ..builder import TemplateBuilder

REVIEW_LINTERS = ["syntax", "pyflakes", "mccabe", "pycodestyle", "bugbear", "security", "todo"]


SHARED_MODULE = "agent_io.py"
"""The helper module every Python main script imports (config in, JSON out, Claude call)."""


def script(filename: str) -> str:
    """The text of a script shipped in this package."""
    return files(__package__).joinpath(filename).read_text()


def use_script(builder: TemplateBuilder, filename: str) -> TemplateBuilder:
    """Make a collection script the main script, with the helper module it imports."""
    builder.set_main_script(script(filename))
    if filename.endswith(".py"):
        builder.add_module(SHARED_MODULE, script(SHARED_MODULE))
    return builder


def python_base() -> TemplateBuilder:
    return use_script(
        TemplateBuilder.create_python_template(
            "Python Base", "Python environment: echoes a message and computes statistics over data"
        ).set_metadata(tags=["python", "base"], category="base"),
        "python_base.py",
    )


def node_base() -> TemplateBuilder:
    return use_script(
        TemplateBuilder.create_node_template(
            "Node.js Base", "Node.js 20 environment: echoes a message and computes statistics"
        ).set_metadata(tags=["node", "javascript", "base"], category="base"),
        "node_base.js",
    )


def trading_agent() -> TemplateBuilder:
    return use_script(
        TemplateBuilder.create_trading_template("Trading Agent Base", "momentum")
        .set_metadata(
            description="Trading agent: RSI, MACD and SMA signals with risk parameters and "
            "backtests, on synthetic (offline) or Yahoo Finance market data",
            tags=["trading", "momentum", "backtest"],
        )
        .set_requirements(memory_mb=2048)
        .set_trading_agent_config(
            symbols=["AAPL", "GOOGL", "MSFT"],
            risk_params={"max_position_size": 0.1, "stop_loss": 0.02, "take_profit": 0.04},
            execution_mode="paper_trading",
            data_sources=["synthetic", "yahoo"],
            indicators=["RSI", "MACD", "SMA"],
            backtest_enabled=True,
        ),
        "trading_agent.py",
    )


def claude_flow_swarm() -> TemplateBuilder:
    return use_script(
        TemplateBuilder.create_claude_flow_template(
            "Claude-Flow Swarm Orchestrator",
            agent_types=["coordinator", "researcher", "coder", "analyst", "tester"],
        )
        .set_metadata(
            description="Multi-agent coordination: topology, task decomposition and message "
            "passing; a deterministic dry run offline, Claude agents with ANTHROPIC_API_KEY",
            tags=["claude-flow", "swarm", "orchestration"],
        )
        .set_claude_flow_config(
            swarm_topology="mesh",
            max_agents=8,
            coordination_mode="collaborative",
            enable_memory=True,
        ),
        "claude_flow_swarm.py",
    )


def claude_flow_neural() -> TemplateBuilder:
    return use_script(
        TemplateBuilder.create_claude_flow_template(
            "Claude-Flow Neural Agent", agent_types=["pattern_learner"]
        )
        .set_type(TemplateType.CLAUDE_FLOW_NEURAL)
        .set_metadata(
            description="Pattern recognition: trains a pure-Python logistic regression or "
            "perceptron on a series and predicts its next move",
            tags=["claude-flow", "neural", "pattern-recognition"],
        )
        .set_claude_flow_config(swarm_topology="star", enable_neural=True, enable_memory=True),
        "claude_flow_neural.py",
    )


def claude_code_sparc() -> TemplateBuilder:
    return use_script(
        TemplateBuilder.create_claude_code_template(
            "Claude Code SPARC Developer",
            "SPARC methodology: Specification, Pseudocode, Architecture, Refinement and "
            "Completion, generating code whose tests really run",
        )
        .set_metadata(tags=["claude-code", "sparc", "tdd"])
        .set_claude_code_config(tools=["Read", "Edit", "Bash"]),
        "claude_code_sparc.py",
    )


def claude_code_reviewer() -> TemplateBuilder:
    return use_script(
        TemplateBuilder.create_claude_code_template(
            "Claude Code Reviewer",
            "Automated code review with offline linters: syntax, unused imports, undefined "
            "names, complexity, style, TODOs and security patterns, scored",
            sparc_mode="review",
        )
        .set_metadata(tags=["claude-code", "review", "linting", "security"])
        .set_claude_code_config(linters=REVIEW_LINTERS),
        "claude_code_reviewer.py",
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
