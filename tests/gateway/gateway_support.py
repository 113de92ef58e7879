"""Helpers of the gateway tests: the seed's curl calls, tokens, SSE parsing."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx

from e2b_operator import localstack


@dataclass
class Users:
    namespace: str
    alice: str
    bob: str

    def client(self, gateway: localstack.Gateway, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=gateway.url, headers=headers, timeout=300)


def header_file(tmp_path: Path, token: str) -> Path:
    """A curl header file with the token (kept off command lines)."""
    path = tmp_path / "auth-header"
    path.write_text(f"Authorization: Bearer {token}\n")
    path.chmod(0o600)
    return path


def events(lines: list[str]) -> list[dict]:
    """Parsed SSE messages: [{"event": ..., **data}]."""
    found, name = [], None
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            found.append({"event": name, **json.loads(line[6:])})
    return found


SEED_LIST = "curl http://localhost:8000/e2b/templates/registry/list"
SEED_SEARCH = 'curl "http://localhost:8000/e2b/templates/registry/search?query=trading"'
SEED_DEPLOY = """curl -X POST http://localhost:8000/e2b/templates/deploy \\
  -H "Content-Type: application/json" \\
  -d '{"template_id": "python_base", "config": {"env_vars": {"DEBUG": "true"}}}'"""
SEED_EXECUTE = """curl -X POST http://localhost:8000/e2b/templates/deploy/sandbox_123/execute \\
  -H "Content-Type: application/json" \\
  -d '{"input_data": {"symbol": "AAPL", "period": "1mo"}}'"""
"""The seed's curl examples ("Using the REST API"), verbatim."""


def curl(gateway: localstack.Gateway, headers: Path, command: str) -> tuple[int, dict]:
    """Run a seed curl command with only the host changed and the token header added."""
    assert command.startswith("curl ")
    command = command.replace("http://localhost:8000", gateway.url)
    added = f"curl -sS -w '\\n%{{http_code}}' -H @{headers} "
    out = subprocess.run(
        ["bash", "-c", added + command[5:]], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    body, _, code = out.stdout.rpartition("\n")
    return int(code), json.loads(body)
