"""Python base template: echo a message and/or compute statistics over a data list.

Input (JSON, argv[1] or stdin): {"message": str, "data": [number, ...]}.
Output: one JSON document; errors print {"error": ...} and exit 1.
"""

import json
import math
import platform
import statistics
import sys


def read_config() -> dict:
    """Parse the JSON config from argv[1], else stdin, else {}."""
    raw = sys.argv[1] if len(sys.argv) > 1 else ("" if sys.stdin.isatty() else sys.stdin.read())
    config = json.loads(raw) if raw.strip() else {}
    if not isinstance(config, dict):
        raise ValueError("config must be a JSON object")
    return config


def describe(data: list) -> dict:
    """Summary statistics of a list of numbers."""
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in data):
        raise ValueError("data must be a list of numbers")
    if not all(math.isfinite(x) for x in data):
        raise ValueError("data must be finite numbers")
    if not data:
        return {"count": 0}
    return {
        "count": len(data),
        "sum": math.fsum(data),
        "min": min(data),
        "max": max(data),
        "mean": statistics.fmean(data),
        "median": statistics.median(data),
        "stdev": statistics.stdev(data) if len(data) > 1 else 0.0,
    }


def run(config: dict) -> dict:
    """Process the config: echo the message, describe the data."""
    result: dict = {
        "template": "python_base",
        "status": "ok",
        "runtime": f"python {platform.python_version()}",
        "received": sorted(config),
    }
    if "message" in config:
        message = str(config["message"])
        result["message"] = message
        result["reply"] = f"Received: {message}"
        result["length"] = len(message)
    if "data" in config:
        if not isinstance(config["data"], list):
            raise ValueError("data must be a list of numbers")
        result["stats"] = describe(config["data"])
    return result


def main() -> int:
    try:
        result = run(read_config())
    except (ValueError, TypeError) as exc:
        print(json.dumps({"error": str(exc), "type": type(exc).__name__}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
