"""The seed's Quick Start 2 (Creating Custom Templates) and Template Examples, as written."""

from __future__ import annotations

import pytest

from e2b_operator.toolkit import TemplateBuilder, TemplateRegistry, TemplateType

pytestmark = pytest.mark.cluster


def test_creating_custom_templates() -> None:
    registry = TemplateRegistry()  # setup: the seed's Quick Start 1 made it

    # Create Python template
    builder = TemplateBuilder.create_python_template(
        "My Custom Agent",
        "Custom trading agent with specific indicators"
    )  # fmt: skip

    # Customize requirements
    builder.set_requirements(
        python_packages=["yfinance", "ta", "numpy"],
        memory_mb=2048
    )  # fmt: skip

    # Set custom script
    builder.set_main_script("""
import yfinance as yf
import json
import sys

def main():
    config = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    symbol = config.get('symbol', 'AAPL')
    
    ticker = yf.Ticker(symbol)
    data = ticker.history(period='1d')
    
    return {
        'symbol': symbol,
        'price': float(data['Close'].iloc[-1]),
        'volume': int(data['Volume'].iloc[-1])
    }

if __name__ == '__main__':
    result = main()
    print(json.dumps(result))
""")  # noqa: W293 (the seed's blank lines carry spaces)

    # Build and register
    template = builder.build()
    registry.register_template("custom_agent", template)

    stored = registry.get_template("custom_agent")
    assert stored is not None and stored.spec.display_name == "My Custom Agent"
    assert template.metadata.name == "My Custom Agent"
    assert stored.spec.requirements.python_packages == ["yfinance", "ta", "numpy"]
    assert stored.spec.requirements.memory_mb == template.requirements.memory_mb == 2048


def test_simple_python_data_processor() -> None:
    builder = (TemplateBuilder()
        .set_type(TemplateType.PYTHON_BASE)
        .set_metadata("Data Processor", "Process CSV data")
        .set_requirements(python_packages=["pandas", "numpy"])
        .set_main_script("""
import pandas as pd
import json
import sys

def process_data(config):
    # Load data
    df = pd.read_csv(config.get('input_file', '/tmp/data.csv'))
    
    # Process
    result = {
        'rows': len(df),
        'columns': list(df.columns),
        'summary': df.describe().to_dict()
    }
    
    return result

if __name__ == '__main__':
    config = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    result = process_data(config)
    print(json.dumps(result, indent=2))
"""))  # fmt: skip  # noqa: W293

    template = builder.build()

    assert template.template_type is TemplateType.PYTHON_BASE
    assert template.metadata.name == "Data Processor"
    assert "pd.read_csv" in template.files.main_script
    assert template.to_spec().requirements.python_packages == ["pandas", "numpy"]


def test_trading_signal_generator() -> None:
    builder = TemplateBuilder.create_trading_template(
        "RSI Signal Generator",
        "rsi_signals"
    )  # fmt: skip

    builder.set_main_script("""
import yfinance as yf
import pandas as pd
import numpy as np
import json
import sys

def calculate_rsi(prices, period=14):
    delta = prices.diff()
    gain = (delta.where(delta > 0, 0)).rolling(window=period).mean()
    loss = (-delta.where(delta < 0, 0)).rolling(window=period).mean()
    rs = gain / loss
    return 100 - (100 / (1 + rs))

def generate_signals(symbol, config):
    # Fetch data
    ticker = yf.Ticker(symbol)
    data = ticker.history(period=config.get('period', '1mo'))
    
    # Calculate RSI
    data['RSI'] = calculate_rsi(data['Close'])
    
    # Generate signals
    signals = []
    current_rsi = data['RSI'].iloc[-1]
    
    if current_rsi < 30:
        signals.append({
            'action': 'buy',
            'reason': 'RSI oversold',
            'strength': (30 - current_rsi) / 30
        })
    elif current_rsi > 70:
        signals.append({
            'action': 'sell',
            'reason': 'RSI overbought',
            'strength': (current_rsi - 70) / 30
        })
    
    return {
        'symbol': symbol,
        'current_price': float(data['Close'].iloc[-1]),
        'rsi': float(current_rsi),
        'signals': signals
    }

def main():
    config = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    symbols = config.get('symbols', ['AAPL'])
    
    results = {}
    for symbol in symbols:
        try:
            results[symbol] = generate_signals(symbol, config)
        except Exception as e:
            results[symbol] = {'error': str(e)}
    
    print(json.dumps(results, indent=2))

if __name__ == '__main__':
    main()
""")  # noqa: W293

    template = builder.build()  # setup: the seed's next step
    assert template.trading_agent.strategy_type == "rsi_signals"
    assert "calculate_rsi" in template.files.main_script


def test_claude_flow_swarm_template() -> None:
    builder = TemplateBuilder.create_claude_flow_template(
        "Research Swarm",
        agent_types=["researcher", "analyst", "synthesizer"]
    )  # fmt: skip

    builder.set_claude_flow_config(
        swarm_topology="mesh",
        max_agents=6,
        coordination_mode="collaborative",
        enable_neural=True,
        hooks={
            "pre-task": "npx claude-flow@alpha hooks pre-task",
            "post-task": "npx claude-flow@alpha hooks post-task"
        }
    )  # fmt: skip

    template = builder.build()  # setup: the seed's next step
    assert template.claude_flow.agent_types == ["researcher", "analyst", "synthesizer"]
    assert template.claude_flow.hooks["pre-task"] == "npx claude-flow@alpha hooks pre-task"
    assert template.to_spec().claude_flow.max_agents == 6
