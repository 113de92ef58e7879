"""Python base template: echo a message and/or compute statistics over a data list.

Input (JSON, argv[1] or stdin; defaults from the template's custom_config):
{"message": str, "data": [number, ...]}. With pandas installed (the collection's template
installs numpy and pandas) the data is also described by pandas.
Output: one JSON document; errors print {"error": ...} and exit 1.
"""

import math
import platform
import statistics
import sys

from agent_io import run_main

try:
    import pandas
except ImportError:  # a bare Python template: the standard library statistics only
    pandas = None


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
        if pandas is not None and config["data"]:
            summary = pandas.Series(config["data"], dtype="float64").describe()
            result["pandas"] = {"version": pandas.__version__, "describe": summary.to_dict()}
    return result


if __name__ == "__main__":
    sys.exit(run_main(run))
