"""The builder's presets by short name, for `kubectl e2b templates new` and the gateway."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .builder import TemplateBuilder

SCAFFOLDS = ("python", "node", "trading", "claude-flow", "claude-code", "reviewer")
DEFAULT_AGENTS = ("researcher", "analyst", "coder")


def scaffold(
    kind: str,
    name: str,
    description: str | None = None,
    strategy: str = "momentum",
    agents: Sequence[str] = (),
) -> TemplateBuilder:
    """A builder of that preset (one of SCAFFOLDS); its main script runs as is."""
    text = description or f"{name}: a {kind} template"
    presets: dict[str, Callable[[], TemplateBuilder]] = {
        "python": lambda: TemplateBuilder.create_python_template(name, text),
        "node": lambda: TemplateBuilder.create_node_template(name, text),
        "trading": lambda: TemplateBuilder.create_trading_template(name, strategy),
        "claude-flow": lambda: TemplateBuilder.create_claude_flow_template(
            name, list(agents or DEFAULT_AGENTS)
        ),
        "claude-code": lambda: TemplateBuilder.create_claude_code_template(name, description),
        "reviewer": lambda: TemplateBuilder.create_claude_code_template(
            name, description, sparc_mode="review"
        ),
    }
    if kind not in presets:
        raise ValueError(f"unknown template preset {kind!r}: use one of {', '.join(SCAFFOLDS)}")
    return presets[kind]()
