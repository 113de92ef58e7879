"""What the collection's Python main scripts share: config in, one JSON document out, and
the Claude call of their online paths. Standard library only.

It is shipped beside each main script (files.modules["agent_io.py"], so /app/agent_io.py).
"""

import json
import os
import sys
import urllib.request
from collections.abc import Callable

ANTHROPIC_URL = "https://api.anthropic.com/v1/messages"


def read_config() -> dict:
    """Parse the JSON config from argv[1], else stdin, else {}."""
    raw = sys.argv[1] if len(sys.argv) > 1 else ("" if sys.stdin.isatty() else sys.stdin.read())
    config = json.loads(raw) if raw.strip() else {}
    if not isinstance(config, dict):
        raise ValueError("config must be a JSON object")
    return config


def run_main(
    run: Callable[[dict], dict],
    errors: tuple[type[BaseException], ...] = (),
    succeeded: Callable[[dict], bool] = lambda result: True,
) -> int:
    """Run on the config and print the result as JSON. Bad input (ValueError, TypeError)
    and ``errors`` print {"error": ...}; the exit code is 0 only on success."""
    try:
        result = run(read_config())
    except (ValueError, TypeError, *errors) as exc:
        print(json.dumps({"error": str(exc), "type": type(exc).__name__}))
        return 1
    print(json.dumps(result))
    return 0 if succeeded(result) else 1


def call_claude(prompt: str, model: str, max_tokens: int = 2048, timeout: float = 300) -> str:
    """One Anthropic Messages API call (the online path; needs ANTHROPIC_API_KEY)."""
    body = {
        "model": model,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": prompt}],
    }
    request = urllib.request.Request(
        ANTHROPIC_URL,
        data=json.dumps(body).encode(),
        headers={
            "x-api-key": os.environ["ANTHROPIC_API_KEY"],
            "anthropic-version": "2023-06-01",
            "content-type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        reply = json.load(response)
    return "".join(part.get("text", "") for part in reply["content"])
