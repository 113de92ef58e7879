"""What the collection's Python main scripts share: config in (the template's own section of
/app/template.json, overridden by the run's JSON input), one JSON document out, and the
Claude call of their online paths. Standard library only.

It is shipped beside each main script (files.modules["agent_io.py"], so /app/agent_io.py).
"""

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Callable

ANTHROPIC_URL = "https://api.anthropic.com/v1/messages"
TEMPLATE_CONFIG = "/app/template.json"
LOCAL_BIN = "/app/node_modules/.bin"


def template_config() -> dict:
    """The whole template configuration ($E2B_TEMPLATE_CONFIG, /app/template.json): metadata,
    requirements, hooks, claude_flow, claude_code, trading_agent, custom_config; {} when absent
    (a script run outside a sandbox)."""
    path = os.environ.get("E2B_TEMPLATE_CONFIG", TEMPLATE_CONFIG)
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def library_versions(*names: str) -> dict[str, str]:
    """Versions of the installed distributions among `names` (what the template installed)."""
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


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
    section: str | None = None,
) -> int:
    """Run on the config and print the result as JSON. The config is the template's
    ``section`` (e.g. trading_agent) and custom_config, overridden key by key by the input.
    Bad input (ValueError, TypeError) and ``errors`` print {"error": ...}; the exit code is 0
    only on success."""
    try:
        template = template_config()
        defaults = {**(template.get("custom_config") or {}), **(template.get(section) or {})}
        result = run({**defaults, **read_config()})
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


def installed_cli(name: str) -> str | None:
    """An npm CLI the template installed (globally or under /app), if any."""
    return shutil.which(name) or shutil.which(name, path=LOCAL_BIN)


def cli_version(name: str) -> str | None:
    """`NAME --version`, or None when that CLI is not installed."""
    cli = installed_cli(name)
    if cli is None:
        return None
    proc = subprocess.run([cli, "--version"], capture_output=True, text=True, timeout=60)
    return proc.stdout.strip() or None


def claude_code(
    prompt: str, model: str, cwd: str | None = None, timeout: float = 600
) -> str | None:
    """One non-interactive Claude Code run (`claude -p`), the template's installed CLI;
    None when the CLI is not installed."""
    cli = installed_cli("claude")
    if cli is None:
        return None
    cmd = [cli, "-p", prompt, "--model", model, "--output-format", "text"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    if proc.returncode != 0:
        raise OSError(f"claude exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return proc.stdout
