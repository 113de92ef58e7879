"""The REST API gateway, measured on bench_operator.py's stack (run by `make bench`).

- overhead: p50/p95 of `POST /e2b/templates/deploy/{id}/execute` (caller token, reviews,
  the same toolkit calls) against `TemplateDeployer.execute_template` directly, interleaved
  in one run, for a trivial script; the ratio is the gateway's cost.
- SSE latency: a script prints its wall-clock time every 0.25 s; the client subtracts it from
  its own clock when the line arrives (e2b-local shares the host's clock).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable

import httpx
from kubernetes_asyncio import client

from e2b_operator.controlplane.cluster import LocalCluster
from e2b_operator.toolkit import TemplateDeployer

Add = Callable[[str, str, str, bool | None], None]
NAME = "bench-gateway"
SCRIPT = """import json, sys, time
config = json.loads(sys.argv[1])
for _ in range(config.get("stamps", 0)):
    print(f"stamp {time.time()}", flush=True)
    time.sleep(0.25)
print(json.dumps(config))
"""
"""Echoes its input; with {"stamps": n} first prints n timestamps 0.25 s apart."""


def setup(cluster: LocalCluster, namespace: str) -> str:
    """The template, a one-replica deployment of it, and a token of a ServiceAccount bound to
    the shipped e2b-user role (the path a real caller takes)."""
    objects = [
        {
            "apiVersion": "e2b.dev/v1alpha1",
            "kind": "E2BTemplate",
            "metadata": {"name": NAME},
            "spec": {
                "type": "pythonBase",
                "requirements": {"runtime": "python3.11", "cpuCores": 1, "memoryMB": 256},
                "files": {"mainScript": SCRIPT},
            },
        },
        {
            "apiVersion": "e2b.dev/v1alpha1",
            "kind": "E2BDeployment",
            "metadata": {"name": NAME},
            "spec": {"templateRef": {"name": NAME}, "replicas": 1},
        },
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": NAME}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": NAME},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "e2b-user",
            },
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": namespace}],
        },
    ]
    docs = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=docs)
    return cluster.kubectl("-n", namespace, "create", "token", NAME).stdout.strip()


def p(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return statistics.median(xs) if q == 0.5 else xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def ms(xs: list[float]) -> str:
    return f"p50 {p(xs, 0.5) * 1000:.0f} ms, p95 {p(xs, 0.95) * 1000:.0f} ms"


async def measure(
    api: client.ApiClient,
    cluster: LocalCluster,
    gateway_url: str,
    namespace: str,
    runs: int,
    add: Add,
    notes: list[str],
) -> None:
    token = setup(cluster, namespace)
    deployer = TemplateDeployer(namespace=namespace, api_client=api, ready_timeout=600)
    sandbox = (await deployer.wait_ready(NAME))["sandbox_id"]
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=gateway_url, headers=auth, timeout=120) as http:
        path = f"/e2b/templates/deploy/{sandbox}/execute"
        direct, gateway = [], []
        for i in range(runs + 1):  # the first of each warms connections and caches up
            t0 = time.perf_counter()
            result = await deployer.execute_template(sandbox, {"i": i})
            t1 = time.perf_counter()
            answer = await http.post(path, json={"input_data": {"i": i}})
            t2 = time.perf_counter()
            assert result["status"] == "success", result
            assert answer.status_code == 200 and answer.json()["status"] == "success", answer.text
            if i:
                direct.append(t1 - t0)
                gateway.append(t2 - t1)
        ratio = p(gateway, 0.5) / p(direct, 0.5)
        add(f"REST execute, trivial script (n={runs})", ms(gateway), "", None)
        add("  same via TemplateDeployer", ms(direct), "", None)
        add("  gateway overhead (p50 ratio)", f"{ratio:.2f}x", "<= 1.5x", ratio <= 1.5)
        latencies = []
        sse = {"Accept": "text/event-stream"}
        body = {"input_data": {"stamps": 20}}
        async with http.stream("POST", path, json=body, headers=sse) as stream:
            event = ""
            async for line in stream.aiter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif event == "output" and line.startswith("data: "):
                    printed = json.loads(line[6:])["line"].split()
                    if printed[0] == "stamp":
                        latencies.append(time.time() - float(printed[1]))
        add(f"SSE line latency (n={len(latencies)})", ms(latencies), "p95 <= 200 ms",
            p(latencies, 0.95) <= 0.2)  # fmt: skip
        notes.append(
            "SSE latency: printed in the sandbox -> operator status write (<= 0.1 s batching)"
            " -> watch -> gateway -> client"
        )
