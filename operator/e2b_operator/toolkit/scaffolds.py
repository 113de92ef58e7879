"""Ready-to-run builder presets: the seed's factory methods with a collection main script.

Shared by `kubectl e2b templates new` and the gateway's builder endpoints.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .builder import TemplateBuilder
from .collection.catalog import use_script

SCAFFOLDS = ("python", "node", "trading", "claude-flow", "claude-code", "reviewer")
DEFAULT_AGENTS = ("researcher", "analyst", "coder")


def scaffold(
    kind: str,
    name: str,
    description: str | None = None,
    strategy: str = "momentum",
    agents: Sequence[str] = (),
) -> TemplateBuilder:
    """A builder of that preset (one of SCAFFOLDS) whose main script runs as is."""
    text = description or f"{name}: a {kind} template"
    presets: dict[str, Callable[[], TemplateBuilder]] = {
        "python": lambda: use_script(
            TemplateBuilder.create_python_template(name, text), "python_base.py"
        ),
        "node": lambda: use_script(
            TemplateBuilder.create_node_template(name, text), "node_base.js"
        ),
        "trading": lambda: use_script(
            TemplateBuilder.create_trading_template(name, strategy), "trading_agent.py"
        ),
        "claude-flow": lambda: use_script(
            TemplateBuilder.create_claude_flow_template(name, list(agents or DEFAULT_AGENTS)),
            "claude_flow_swarm.py",
        ),
        "claude-code": lambda: use_script(
            TemplateBuilder.create_claude_code_template(name, description),
            "claude_code_sparc.py",
        ),
        "reviewer": lambda: use_script(
            TemplateBuilder.create_claude_code_template(name, description, sparc_mode="review"),
            "claude_code_reviewer.py",
        ),
    }
    if kind not in presets:
        raise ValueError(f"unknown template preset {kind!r}: use one of {', '.join(SCAFFOLDS)}")
    return presets[kind]()
