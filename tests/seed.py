"""The seed's template configurations, for the tests that take them further than
tests/seed_examples/ (which runs the seed's text as written)."""

from __future__ import annotations

from typing import Any

RESEARCH_AGENTS = ["researcher", "analyst", "synthesizer"]

# Template Examples: the Claude-Flow research swarm's set_claude_flow_config(...)
RESEARCH_SWARM: dict[str, Any] = {
    "swarm_topology": "mesh",
    "max_agents": 6,
    "coordination_mode": "collaborative",
    "enable_neural": True,
    "hooks": {
        "pre-task": "npx claude-flow@alpha hooks pre-task",
        "post-task": "npx claude-flow@alpha hooks post-task",
    },
}

# Advanced Features: the momentum trading template's set_trading_agent_config(...)
MOMENTUM: dict[str, Any] = {
    "strategy_type": "momentum",
    "symbols": ["AAPL", "GOOGL", "MSFT"],
    "risk_params": {"max_position_size": 0.1, "stop_loss": 0.02},
    "execution_mode": "paper_trading",
    "data_sources": ["yfinance", "alpaca"],
    "indicators": ["RSI", "MACD", "SMA"],
    "backtest_enabled": True,
}
