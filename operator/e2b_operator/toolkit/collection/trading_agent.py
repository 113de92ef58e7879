"""Trading agent template: RSI/MACD/SMA indicators, signals with risk params, backtests.

Input (JSON, argv[1] or stdin), all optional:
  (defaults: the template's trading_agent section in /app/template.json)
  symbols            ["AAPL", ...]
  strategy_type      "momentum" | "rsi" | "mean_reversion"
  dataSource         "synthetic" (offline, seeded) | "yahoo" (online; synthetic when
                     unreachable) | "provided"; default: the first of data_sources
  indicators         which of RSI, MACD, SMA to report (default all)
  prices             {symbol: [close, ...]} or {symbol: [{open,high,low,close,volume}, ...]}
  bars, seed         length and seed of the synthetic series
  risk_params        {"max_position_size": 0.1, "stop_loss": 0.02, "take_profit": 0.04}
  capital, backtest  starting capital and whether to backtest over the series
Output: one JSON document; errors print {"error": ...} and exit 1.
"""

import itertools
import json
import math
import random
import sys
import urllib.parse
import urllib.request

from agent_io import library_versions, run_main

STRATEGIES = ("momentum", "rsi", "mean_reversion")
DEFAULT_RISK = {"max_position_size": 0.1, "stop_loss": 0.02, "take_profit": 0.04}
ALIASES = {"yfinance": "yahoo"}
YAHOO_CHART = "https://query1.finance.yahoo.com/v8/finance/chart/{symbol}?{query}"


def synthetic_bars(symbol: str, bars: int, seed: int) -> list[dict]:
    """Deterministic OHLCV series: a random walk with drifting regimes, seeded by symbol."""
    rng = random.Random(f"{seed}:{symbol}")
    price = 50.0 + rng.random() * 250.0
    drift, out = 0.0, []
    for i in range(bars):
        if i % 30 == 0:
            drift = rng.uniform(-0.004, 0.004)
        open_ = price
        close = max(1.0, open_ * math.exp(drift + rng.gauss(0.0, 0.015)))
        high = max(open_, close) * (1 + abs(rng.gauss(0.0, 0.005)))
        low = min(open_, close) * (1 - abs(rng.gauss(0.0, 0.005)))
        volume = int(1_000_000 * (1 + abs(rng.gauss(0.0, 0.5))))
        out.append({"open": open_, "high": high, "low": low, "close": close, "volume": volume})
        price = close
    return out


def yahoo_bars(symbol: str, period: str) -> list[dict]:
    """Daily OHLCV from Yahoo Finance's chart endpoint (online path)."""
    query = urllib.parse.urlencode({"range": period, "interval": "1d"})
    url = YAHOO_CHART.format(symbol=urllib.parse.quote(symbol), query=query)
    request = urllib.request.Request(url, headers={"User-Agent": "e2b-trading-agent"})
    with urllib.request.urlopen(request, timeout=20) as response:
        chart = json.load(response)["chart"]["result"][0]
    quote = chart["indicators"]["quote"][0]
    keys = ("open", "high", "low", "close", "volume")
    rows = zip(*(quote[k] for k in keys), strict=True)
    return [dict(zip(keys, row, strict=True)) for row in rows if None not in row]


def provided_bars(symbol: str, series: object) -> list[dict]:
    """Bars from the config: closes or OHLCV dicts."""
    if not isinstance(series, list) or not series:
        raise ValueError(f"prices[{symbol}] must be a non-empty list")
    bars = []
    for item in series:
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            c = float(item)
            bars.append({"open": c, "high": c, "low": c, "close": c, "volume": 0})
        elif isinstance(item, dict) and isinstance(item.get("close"), (int, float)):
            c = float(item["close"])
            bars.append(
                {
                    "open": float(item.get("open", c)),
                    "high": float(item.get("high", c)),
                    "low": float(item.get("low", c)),
                    "close": c,
                    "volume": item.get("volume", 0),
                }
            )
        else:
            raise ValueError(f"prices[{symbol}] items must be numbers or bars with a close")
    return bars


def sma(values: list[float], period: int) -> list[float | None]:
    """Simple moving average; None until the window is full."""
    out: list[float | None] = [None] * len(values)
    for i in range(period - 1, len(values)):
        out[i] = sum(values[i - period + 1 : i + 1]) / period
    return out


def ema(values: list[float], period: int) -> list[float]:
    """Exponential moving average seeded with the first value."""
    alpha, out = 2 / (period + 1), []
    for v in values:
        out.append(v if not out else alpha * v + (1 - alpha) * out[-1])
    return out


def rsi(closes: list[float], period: int = 14) -> list[float | None]:
    """RSI over rolling mean gains/losses (as in the original template)."""
    out: list[float | None] = [None] * len(closes)
    deltas = [b - a for a, b in itertools.pairwise(closes)]
    for i in range(period, len(closes)):
        window = deltas[i - period : i]
        gain = sum(d for d in window if d > 0) / period
        loss = sum(-d for d in window if d < 0) / period
        out[i] = 100.0 if loss == 0 else 100 - 100 / (1 + gain / loss)
    return out


def macd(closes: list[float]) -> tuple[list[float], list[float]]:
    """MACD(12, 26) line and its 9-period signal line."""
    line = [a - b for a, b in zip(ema(closes, 12), ema(closes, 26), strict=True)]
    return line, ema(line, 9)


def indicators(closes: list[float]) -> dict[str, list]:
    line, signal = macd(closes)
    return {
        "rsi": rsi(closes),
        "macd": line,
        "macd_signal": signal,
        "sma20": sma(closes, 20),
        "sma50": sma(closes, 50),
    }


def decide(strategy: str, ind: dict[str, list], closes: list[float], i: int) -> dict | None:
    """The strategy's signal at bar i, using only data up to i."""
    r, s20, s50 = ind["rsi"][i], ind["sma20"][i], ind["sma50"][i]
    hist = ind["macd"][i] - ind["macd_signal"][i]
    if r is None or s20 is None:
        return None
    if strategy == "rsi":
        if r < 30:
            return {"action": "buy", "reason": "RSI oversold", "strength": (30 - r) / 30}
        if r > 70:
            return {"action": "sell", "reason": "RSI overbought", "strength": (r - 70) / 30}
        return None
    if strategy == "mean_reversion":
        window = closes[i - 19 : i + 1]
        sd = math.sqrt(sum((c - s20) ** 2 for c in window) / 20) or 1e-9
        z = (closes[i] - s20) / sd
        if z < -2:
            return {"action": "buy", "reason": "price 2 sd below SMA20", "strength": min(1, -z / 4)}
        if z > 2:
            return {"action": "sell", "reason": "price 2 sd above SMA20", "strength": min(1, z / 4)}
        return None
    trend = s50 if s50 is not None else s20
    strength = min(1.0, abs(hist) / (closes[i] * 0.01))
    if closes[i] > trend and hist > 0 and r < 70:
        return {"action": "buy", "reason": "uptrend with MACD above signal", "strength": strength}
    if closes[i] < trend and hist < 0:
        return {
            "action": "sell",
            "reason": "downtrend with MACD below signal",
            "strength": strength,
        }
    return None


def with_risk(signal: dict, price: float, capital: float, risk: dict) -> dict:
    """Attach position size, stop loss and take profit to a signal."""
    size = capital * risk["max_position_size"] * max(signal["strength"], 0.25)
    sign = 1 if signal["action"] == "buy" else -1
    return {
        **signal,
        "strength": round(signal["strength"], 4),
        "price": round(price, 4),
        "position_value": round(size, 2),
        "quantity": math.floor(size / price),
        "stop_loss": round(price * (1 - sign * risk["stop_loss"]), 4),
        "take_profit": round(price * (1 + sign * risk["take_profit"]), 4),
    }


def backtest(strategy: str, bars: list[dict], ind: dict, capital: float, risk: dict) -> dict:
    """Long-only backtest: enter on buy, exit on sell, stop loss, take profit or the last bar."""
    closes = [b["close"] for b in bars]
    cash, position, trades, equity_peak, max_dd = capital, None, [], capital, 0.0
    for i in range(len(bars)):
        bar = bars[i]
        if position:
            exit_price, reason = None, ""
            if bar["low"] <= position["stop"]:
                exit_price, reason = position["stop"], "stop_loss"
            elif bar["high"] >= position["target"]:
                exit_price, reason = position["target"], "take_profit"
            else:
                signal = decide(strategy, ind, closes, i)
                if (signal and signal["action"] == "sell") or i == len(bars) - 1:
                    exit_price, reason = bar["close"], "signal" if signal else "end_of_data"
            if exit_price is not None:
                pnl = (exit_price - position["entry"]) * position["qty"]
                cash += position["qty"] * exit_price
                trades.append(
                    {
                        "entry_bar": position["bar"],
                        "exit_bar": i,
                        "entry": round(position["entry"], 4),
                        "exit": round(exit_price, 4),
                        "quantity": position["qty"],
                        "pnl": round(pnl, 2),
                        "exit_reason": reason,
                    }
                )
                position = None
        elif i < len(bars) - 1:
            signal = decide(strategy, ind, closes, i)
            if signal and signal["action"] == "buy":
                price = bar["close"]
                qty = math.floor(cash * risk["max_position_size"] / price)
                if qty > 0:
                    cash -= qty * price
                    position = {
                        "bar": i,
                        "entry": price,
                        "qty": qty,
                        "stop": price * (1 - risk["stop_loss"]),
                        "target": price * (1 + risk["take_profit"]),
                    }
        equity = cash + (position["qty"] * bar["close"] if position else 0)
        equity_peak = max(equity_peak, equity)
        max_dd = max(max_dd, (equity_peak - equity) / equity_peak)
    wins = sum(1 for t in trades if t["pnl"] > 0)
    pnl = cash - capital
    return {
        "initial_capital": capital,
        "final_equity": round(cash, 2),
        "pnl": round(pnl, 2),
        "return_pct": round(100 * pnl / capital, 4),
        "trades": len(trades),
        "wins": wins,
        "win_rate": round(wins / len(trades), 4) if trades else 0.0,
        "max_drawdown_pct": round(100 * max_dd, 4),
        "trade_log": trades,
    }


def analyse(symbol: str, bars: list[dict], config: dict, risk: dict) -> dict:
    """Indicators, current signal and optional backtest for one symbol."""
    if len(bars) < 35:
        raise ValueError(f"{symbol}: need at least 35 bars, got {len(bars)}")
    closes = [b["close"] for b in bars]
    ind = indicators(closes)
    strategy, capital, last = config["strategy"], config["capital"], len(bars) - 1
    signal = decide(strategy, ind, closes, last)
    result = {
        "bars": len(bars),
        "current_price": round(closes[-1], 4),
        "indicators": {
            "RSI": round(ind["rsi"][last], 4),
            "MACD": {
                "macd": round(ind["macd"][last], 4),
                "signal": round(ind["macd_signal"][last], 4),
                "histogram": round(ind["macd"][last] - ind["macd_signal"][last], 4),
            },
            "SMA": {
                "20": round(ind["sma20"][last], 4),
                "50": None if ind["sma50"][last] is None else round(ind["sma50"][last], 4),
            },
        },
        "signals": [with_risk(signal, closes[-1], capital, risk)] if signal else [],
    }
    wanted = config.get("indicators")
    if wanted:
        result["indicators"] = {k: v for k, v in result["indicators"].items() if k in wanted}
    if config["backtest"]:
        result["backtest"] = backtest(strategy, bars, ind, capital, risk)
    return result


def load_bars(symbol: str, config: dict) -> tuple[list[dict], str]:
    """The symbol's bars and where they came from; Yahoo unreachable (offline) falls back
    to the synthetic series, and says so."""
    source = config["dataSource"]
    if source == "provided":
        return provided_bars(symbol, config["prices"].get(symbol)), source
    if source == "yahoo":
        try:
            return yahoo_bars(symbol, config.get("period", "6mo")), source
        except (OSError, ValueError, LookupError, TypeError) as exc:
            source = f"synthetic (yahoo unreachable: {exc})"
    return synthetic_bars(symbol, config["bars"], config["seed"]), source


def normalise(config: dict) -> dict:
    """Apply defaults and check the config."""
    out = dict(config)
    out["strategy"] = config.get("strategy_type", config.get("strategy", "momentum"))
    if out["strategy"] == "rsi_signals":
        out["strategy"] = "rsi"
    if out["strategy"] not in STRATEGIES:
        raise ValueError(f"strategy_type must be one of {', '.join(STRATEGIES)}")
    sources = [ALIASES.get(s, s) for s in config.get("data_sources", [])]
    default_source = next((s for s in sources if s in ("synthetic", "yahoo")), "synthetic")
    out["dataSource"] = config.get(
        "dataSource", "provided" if "prices" in config else default_source
    )
    if out["dataSource"] not in ("synthetic", "provided", "yahoo"):
        raise ValueError("dataSource must be synthetic, provided or yahoo")
    if out["dataSource"] == "provided" and not isinstance(config.get("prices"), dict):
        raise ValueError("dataSource provided needs prices: {symbol: [...]}")
    default_symbols = sorted(config["prices"]) if out["dataSource"] == "provided" else ["AAPL"]
    out["symbols"] = config.get("symbols", default_symbols)
    if not isinstance(out["symbols"], list) or not all(isinstance(s, str) for s in out["symbols"]):
        raise ValueError("symbols must be a list of strings")
    out["risk"] = {**DEFAULT_RISK, **config.get("risk_params", {})}
    for key, value in out["risk"].items():
        if not isinstance(value, (int, float)) or not 0 < value <= 1:
            raise ValueError(f"risk_params.{key} must be a number in (0, 1]")
    out["capital"] = float(config.get("capital", 100_000))
    out["bars"] = int(config.get("bars", 250))
    out["seed"] = int(config.get("seed", 42))
    out["backtest"] = bool(config.get("backtest", config.get("backtest_enabled", True)))
    out["execution_mode"] = config.get("execution_mode", "paper_trading")
    if out["execution_mode"] not in ("paper_trading", "backtest"):
        raise ValueError(
            "execution_mode must be paper_trading or backtest (no broker is connected)"
        )
    if out["execution_mode"] == "backtest":
        out["backtest"] = True
    return out


def run(config: dict) -> dict:
    cfg = normalise(config)
    results = {}
    for symbol in cfg["symbols"]:
        try:
            bars, source = load_bars(symbol, cfg)
            results[symbol] = {"data_source": source, **analyse(symbol, bars, cfg, cfg["risk"])}
        except (OSError, KeyError, IndexError, ValueError, TypeError) as exc:
            results[symbol] = {"error": str(exc)}
    ok = [r for r in results.values() if "error" not in r]
    summary = {
        "symbols": len(results),
        "failed": len(results) - len(ok),
        "buy_signals": sum(s["action"] == "buy" for r in ok for s in r["signals"]),
        "sell_signals": sum(s["action"] == "sell" for r in ok for s in r["signals"]),
    }
    if cfg["backtest"] and ok:
        summary["total_pnl"] = round(sum(r["backtest"]["pnl"] for r in ok), 2)
        summary["total_trades"] = sum(r["backtest"]["trades"] for r in ok)
    result = {
        "template": "trading_agent",
        "libraries": library_versions("numpy", "pandas"),
        "strategy": cfg["strategy"],
        "data_source": cfg["dataSource"],
        "execution_mode": cfg["execution_mode"],
        "risk_params": cfg["risk"],
        "results": results,
        "summary": summary,
    }
    if not ok:
        result["error"] = "no symbol could be analysed"
    return result


if __name__ == "__main__":
    sys.exit(run_main(run, succeeded=lambda result: "error" not in result, section="trading_agent"))
