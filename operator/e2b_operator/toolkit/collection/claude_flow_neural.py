"""Claude-Flow neural agent template: learn a series' next-step direction in pure Python.

Input (JSON, argv[1] or stdin), all optional:
  series          [number, ...] (default: a seeded synthetic cyclic series)
  length, seed    length and seed of the synthetic series
  model           "logistic" (default) | "perceptron"
  window          lagged differences used as features (default 4)
  epochs, learning_rate, l2, train_split
Output: one JSON document; errors print {"error": ...} and exit 1.
"""

import itertools
import math
import random
import sys

from agent_io import cli_version, run_main


def synthetic_series(length: int, seed: int) -> list[float]:
    """A cyclic pattern (two sines) with a slow trend and seeded noise."""
    rng = random.Random(seed)
    return [
        100
        + 0.02 * t
        + 5 * math.sin(2 * math.pi * t / 24)
        + 2 * math.sin(2 * math.pi * t / 9)
        + rng.gauss(0, 0.4)
        for t in range(length)
    ]


def dataset(series: list[float], window: int) -> tuple[list[list[float]], list[int]]:
    """Features: the last `window` differences; label: 1 if the next value is higher."""
    diffs = [b - a for a, b in itertools.pairwise(series)]
    xs, ys = [], []
    for t in range(window, len(diffs)):
        xs.append(diffs[t - window : t])
        ys.append(1 if diffs[t] > 0 else 0)
    return xs, ys


def sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))


class Model:
    """Logistic regression (SGD with L2) or a perceptron over scaled features."""

    def __init__(self, kind: str, n: int, lr: float, l2: float) -> None:
        self.kind, self.lr, self.l2 = kind, lr, l2
        self.w, self.b = [0.0] * n, 0.0
        self.scale = [1.0] * n

    def fit_scale(self, xs: list[list[float]]) -> None:
        for j in range(len(self.w)):
            col = [x[j] for x in xs]
            self.scale[j] = math.sqrt(sum(v * v for v in col) / len(col)) or 1.0

    def prob(self, x: list[float]) -> float:
        z = self.b + sum(w * v / s for w, v, s in zip(self.w, x, self.scale, strict=True))
        return sigmoid(z) if self.kind == "logistic" else (1.0 if z > 0 else 0.0)

    def step(self, x: list[float], y: int) -> float:
        """One update; returns the sample's loss (log loss, or 0/1 for the perceptron)."""
        p = self.prob(x)
        err = y - p
        for j, (v, s) in enumerate(zip(x, self.scale, strict=True)):
            self.w[j] += self.lr * (err * v / s - self.l2 * self.w[j])
        self.b += self.lr * err
        if self.kind == "perceptron":
            return abs(err)
        p = min(max(p, 1e-12), 1 - 1e-12)
        return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def accuracy(model: Model, xs: list[list[float]], ys: list[int]) -> float:
    if not xs:
        return 0.0
    return sum((model.prob(x) >= 0.5) == bool(y) for x, y in zip(xs, ys, strict=True)) / len(xs)


def run(config: dict) -> dict:
    kind = config.get("model", "logistic")
    if kind not in ("logistic", "perceptron"):
        raise ValueError("model must be logistic or perceptron")
    seed = int(config.get("seed", 7))
    series = config.get("series")
    source = "provided" if series is not None else "synthetic"
    if series is None:
        series = synthetic_series(int(config.get("length", 400)), seed)
    if not isinstance(series, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in series
    ):
        raise ValueError("series must be a list of numbers")
    window = int(config.get("window", 4))
    epochs = int(config.get("epochs", 60))
    lr = float(config.get("learning_rate", 0.05))
    split = float(config.get("train_split", 0.8))
    if window < 1 or epochs < 1 or not 0 < split < 1 or lr <= 0:
        raise ValueError("need window >= 1, epochs >= 1, learning_rate > 0, 0 < train_split < 1")
    xs, ys = dataset([float(v) for v in series], window)
    cut = int(len(xs) * split)
    if cut < 10 or len(xs) - cut < 5:
        raise ValueError(f"series too short: {len(series)} values for window {window}")
    train = list(zip(xs[:cut], ys[:cut], strict=True))

    model = Model(kind, window, lr, float(config.get("l2", 0.001)))
    model.fit_scale(xs[:cut])
    rng, history = random.Random(seed), []
    for epoch in range(1, epochs + 1):
        rng.shuffle(train)
        loss = sum(model.step(x, y) for x, y in train) / len(train)
        if epoch == 1 or epoch % 10 == 0 or epoch == epochs:
            history.append({"epoch": epoch, "loss": round(loss, 6)})

    test_x, test_y = xs[cut:], ys[cut:]
    majority = max(sum(test_y), len(test_y) - sum(test_y)) / len(test_y)
    confusion = {"tp": 0, "fp": 0, "tn": 0, "fn": 0}
    for x, y in zip(test_x, test_y, strict=True):
        pred = model.prob(x) >= 0.5
        confusion[("t" if pred == bool(y) else "f") + ("p" if pred else "n")] += 1
    diffs = [b - a for a, b in itertools.pairwise(series)]
    p_next = model.prob(diffs[-window:])
    return {
        "template": "claude_flow_neural",
        "claude_flow": cli_version("claude-flow"),
        "model": kind,
        "data_source": source,
        "samples": {"train": cut, "test": len(test_x)},
        "features": {"window": window, "kind": "lagged differences"},
        "train_accuracy": round(accuracy(model, xs[:cut], ys[:cut]), 4),
        "test_accuracy": round(accuracy(model, test_x, test_y), 4),
        "baseline_accuracy": round(majority, 4),
        "confusion": confusion,
        "loss_history": history,
        "weights": [round(w / s, 6) for w, s in zip(model.w, model.scale, strict=True)],
        "bias": round(model.b, 6),
        "predictions": [
            {
                "index": cut + i + window + 1,
                "actual": "up" if y else "down",
                "predicted": "up" if model.prob(x) >= 0.5 else "down",
                "probability_up": round(model.prob(x), 4),
            }
            for i, (x, y) in enumerate(zip(test_x, test_y, strict=True))
        ][-10:],
        "next": {
            "direction": "up" if p_next >= 0.5 else "down",
            "probability_up": round(p_next, 4),
        },
    }


if __name__ == "__main__":
    sys.exit(run_main(run, section="claude_flow"))
