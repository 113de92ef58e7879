"""Executions followed live: SSE from the gateway, TemplateDeployer.stream_execution and
`kubectl e2b exec --follow` each see the lines of a slow script as they are printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from e2b_operator.toolkit import TemplateDeployer
from support import wait_condition

from .gateway_support import Users, events

pytestmark = pytest.mark.cluster
T = "/e2b/templates"
TICKER = """import json, sys, time
config = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
for i in range(config.get("lines", 5)):
    print(f"tick {i}")
    time.sleep(0.5)
print("to stderr", file=sys.stderr)
print(json.dumps({"ticks": config.get("lines", 5), "big": "x" * config.get("pad", 0)}))
"""
"""Prints a line every 0.5 s, then its result."""
PLUGIN = str(Path(sys.executable).parent / "kubectl-e2b")


@pytest.fixture(scope="module")
def ticker(alice: httpx.Client, kube, users: Users) -> Iterator[dict]:
    """A deployment of the ticker template, made through the gateway; deleted through it."""
    made = alice.post(
        f"{T}/builder/python",
        json={"name": "Ticker", "description": "prints slowly", "main_script": TICKER},
    )
    assert made.status_code == 201, made.text
    wait_condition(kube, users.namespace, "e2bt", "ticker", "Ready", timeout=300)
    deployed = alice.post(f"{T}/deploy", json={"template_id": "ticker", "name": "ticker"})
    assert deployed.status_code == 201, deployed.text
    info = deployed.json()
    yield info
    gone = alice.delete(f"{T}/deploy/{info['sandbox_id']}")
    assert gone.status_code == 200, gone.text


def spread(arrivals: list[float]) -> float:
    """Seconds between the first and the last arrival."""
    return arrivals[-1] - arrivals[0]


def read_sse(response: httpx.Response) -> tuple[list[dict], list[float]]:
    """SSE messages and when each arrived."""
    lines, times = [], []
    for line in response.iter_lines():
        lines.append(line)
        if line.startswith("data: "):
            times.append(time.monotonic())
    return events(lines), times


def test_sse_lines_arrive_as_printed(alice: httpx.Client, ticker: dict) -> None:
    sandbox = ticker["sandbox_id"]
    with alice.stream(
        "POST",
        f"{T}/deploy/{sandbox}/execute",
        json={"input_data": {"lines": 5}},
        headers={"Accept": "text/event-stream"},
    ) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        found, times = read_sse(response)
    kinds = [e["event"] for e in found]
    assert kinds[0] == "execution" and kinds[-1] == "result", kinds
    ticks = [(e, t) for e, t in zip(found, times, strict=True) if e["event"] == "output"]
    stdout = [e["line"] for e, _ in ticks if e["stream"] == "stdout"]
    assert stdout == [*(f"tick {i}" for i in range(5)), '{"ticks": 5, "big": ""}'], found
    assert [e["line"] for e, _ in ticks if e["stream"] == "stderr"] == ["to stderr"]
    tick_times = [t for e, t in ticks if e["line"].startswith("tick")]
    # printed 0.5 s apart: seen over ~2 s, not in one burst at the end
    assert spread(tick_times) > 1.2, tick_times
    assert times[-1] - tick_times[0] > 1.5, (tick_times, times[-1])
    result = found[-1]
    assert result["status"] == "success" and result["exit_code"] == 0
    assert result["result"] == {"ticks": 5, "big": ""}
    phases = [e["phase"] for e in found if e["event"] == "status"]
    assert phases[-1] == "Succeeded" and "Running" in phases


def test_sse_by_get_and_results_are_whole(alice: httpx.Client, ticker: dict) -> None:
    sandbox = ticker["sandbox_id"]
    data = json.dumps({"lines": 1, "pad": 20000})
    with alice.stream(
        "GET", f"{T}/deploy/{sandbox}/execute/stream", params={"input_data": data}
    ) as response:
        assert response.status_code == 200, response.read()
        found, _ = read_sse(response)
    result = found[-1]
    assert result["event"] == "result" and result["result"]["big"] == "x" * 20000
    assert len(result["stdout"]) == 4096  # the tail is a tail; the result is whole
    over = alice.post(
        f"{T}/deploy/{sandbox}/execute", json={"input_data": {"lines": 0, "pad": 40000}}
    ).json()
    assert over["status"] == "error" and over["result"] is None and over["result_truncated"]
    assert "32768 bytes" in over["error"], over


async def test_deployer_stream_execution(kube, users: Users, ticker: dict) -> None:
    deployer = TemplateDeployer(namespace=users.namespace)
    name = await deployer.start_template_execution(ticker["sandbox_id"], {"lines": 4})
    arrivals = []
    async for event in deployer.stream_execution(name):
        if event["event"] == "output" and event["line"].startswith("tick"):
            arrivals.append(time.monotonic())
        last = event
    assert len(arrivals) == 4 and spread(arrivals) > 0.9, arrivals
    assert last["event"] == "result" and last["result"] == {"ticks": 4, "big": ""}


def test_plugin_follow(kube, users: Users, ticker: dict) -> None:
    env = {**os.environ, "KUBECONFIG": str(kube.kubeconfig)}
    args = ["exec", "ticker", "--follow", "--input", '{"lines": 4}', "-n", users.namespace]
    proc = subprocess.Popen(
        [PLUGIN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    assert proc.stderr is not None and proc.stdout is not None
    arrivals = []
    for line in proc.stderr:
        if line.startswith("tick"):
            arrivals.append(time.monotonic())
    assert proc.wait(60) == 0
    assert len(arrivals) == 4 and spread(arrivals) > 0.9, arrivals
    assert json.loads(proc.stdout.read()) == {"ticks": 4, "big": ""}


def test_update_then_cleanup(alice: httpx.Client, ticker: dict, python_base: str) -> None:
    sandbox = ticker["sandbox_id"]
    rolled = alice.put(f"{T}/deploy/{sandbox}/update", json={"template_id": "python_base"})
    assert rolled.status_code == 200, rolled.text
    info = rolled.json()
    assert info["template"] == "python-base" and info["deployment"] == "ticker"
    assert info["sandbox_id"] != sandbox
    ticker["sandbox_id"] = info["sandbox_id"]  # the fixture deletes the deployment by it
