"""Benchmark the operator against a real kube-apiserver, e2b-local and `kopf run`.

Measures: apply-to-Ready of a one-replica E2BDeployment, 0 -> 100 replicas through the
scale subresource, 100 one-replica deployments at once, the operator's RSS, the apiserver
writes (from its own /metrics) during 60 s of idle, the REST gateway (bench_gateway.py), and
the scale row: 1000 one-replica deployments with default health checks (Ready spread, RSS,
idle CPU), and last 0 -> 100 under E2B's Pro rate limit (5 creates/s on both sides: about
20 s).
Everything it starts runs in a temporary workdir and is stopped by PID in ``finally``; the
logs are kept for profiling.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import bench_gateway
import bench_responsiveness
import httpx
from e2b import AsyncSandbox, SandboxQuery
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

from e2b_operator import localstack
from e2b_operator.api import GROUP, VERSION
from e2b_operator.controlplane import binaries
from e2b_operator.controlplane.cluster import LocalCluster

ROOT = Path(__file__).resolve().parent.parent
NS = "bench"
TEMPLATE = "bench-tpl"
DEPLOYMENTS = "e2bdeployments"
TEMPLATES = "e2btemplates"
MERGE_PATCH = "application/merge-patch+json"
WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE", "APPLY"}
WATCHED_RESOURCES = {"e2btemplates", "e2bdeployments", "events"}
Obj = dict[str, Any]


@dataclass(frozen=True)
class Sizes:
    apply_n: int = 20
    replicas: int = 100
    deployments: int = 100
    idle_seconds: float = 60.0
    executions: int = 20
    scale: int = 1000  # the scale row: one-replica deployments with default health checks


QUICK = Sizes(apply_n=5, replicas=10, deployments=10, idle_seconds=15.0, executions=5, scale=30)


@dataclass
class Row:
    """One line of the results table."""

    name: str
    figure: str
    goal: str
    ok: bool | None  # None: not measured


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, name: str, figure: str, goal: str, ok: bool | None) -> None:
        self.rows.append(Row(name, figure, goal, ok))

    def print(self) -> None:
        print()
        print(f"{'measurement':<38} {'figure':<34} {'goal':<14} result")
        print("-" * 96)
        for r in self.rows:
            mark = {True: "ok", False: "MISSED", None: "n/a"}[r.ok]
            print(f"{r.name:<38} {r.figure:<34} {r.goal:<14} {mark}")
        for note in self.notes:
            print(f"  note: {note}")
        print(flush=True)


# -- manifests --------------------------------------------------------------------------------


def template_manifest(
    name: str, main: str = "print('hello')", health: str = bench_responsiveness.HEALTH_CHECK
) -> Obj:
    """A small pythonBase template with a cheap health check (as tests/support.py)."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "E2BTemplate",
        "metadata": {"name": name},
        "spec": {
            "type": "pythonBase",
            "requirements": {"runtime": "python3.11", "cpuCores": 1, "memoryMB": 256},
            "files": {"mainScript": main},
            "hooks": {"healthCheck": health},
        },
    }


FAST_CHECKS = {"intervalSeconds": 5, "failureThreshold": 2, "timeoutSeconds": 5}


def deployment_manifest(
    name: str, replicas: int, template: str = TEMPLATE, checks: Obj | None = FAST_CHECKS
) -> Obj:
    """A deployment of a bench template (health-checked every 5 s unless `checks` says)."""
    spec: Obj = {"templateRef": {"name": template}, "replicas": replicas}
    if checks is not None:
        spec["healthCheck"] = checks
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "E2BDeployment",
        "metadata": {"name": name},
        "spec": spec,
    }


def is_true(obj: Obj, type_: str) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == type_ and c.get("status") == "True" for c in conditions)


def written_by_operator(obj: Obj) -> bool:
    """The operator has written status: the CRD's default ({"observedGeneration": 0}) is
    there from the create on, in the very first version the watch delivers."""
    return bool((obj.get("status") or {}).get("observedGeneration"))


def ready_since(obj: Obj) -> float:
    """The Ready condition's lastTransitionTime (epoch seconds; 0 if none)."""
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == "Ready" and c.get("lastTransitionTime"):
            stamp = c["lastTransitionTime"].replace("Z", "+00:00")
            return datetime.fromisoformat(stamp).timestamp()
    return 0.0


def ready_with(replicas: int) -> Callable[[Obj], bool]:
    """Ready=True, readyReplicas == replicas, observedGeneration current."""

    def check(obj: Obj) -> bool:
        status = obj.get("status") or {}
        return (
            status.get("observedGeneration") == obj["metadata"].get("generation")
            and (status.get("readyReplicas") or 0) == replicas
            and is_true(obj, "Ready")
        )

    return check


# -- watching ---------------------------------------------------------------------------------


class Tracker:
    """Watches the namespace's E2BDeployments; keeps every version with its arrival time."""

    def __init__(self, custom: client.CustomObjectsApi) -> None:
        self.custom = custom
        self.history: dict[str, list[tuple[float, Obj]]] = {}
        self.gone: dict[str, float] = {}
        self.last_error = ""
        self.ended: Counter[str] = Counter()
        """How the watches ended: "closed" (by the server) or the error's type."""
        self._changed = asyncio.Event()

    async def run(self) -> None:
        """Keep watching; a failed list or watch (e.g. 429 while the CRD's storage
        initializes, 410 Gone) is retried after a short pause."""
        while True:
            try:
                await self._list_and_watch()
                self.ended["closed"] += 1
            except (ApiException, aiohttp.ClientError, TimeoutError) as exc:
                self.ended[type(exc).__name__] += 1
                self.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
                await asyncio.sleep(0.2)

    async def _list_and_watch(self) -> None:
        """List, then watch from the list's resourceVersion until the watch ends."""
        listing = await self.custom.list_namespaced_custom_object(GROUP, VERSION, NS, DEPLOYMENTS)
        listed = {obj["metadata"]["name"] for obj in listing.get("items", [])}
        for name in set(self.history) - listed - set(self.gone):
            # Deleted while no watch ran (between the last watch's end and this listing).
            self._record("DELETED", {"metadata": {"name": name}})
        for obj in listing.get("items", []):
            self._record("MODIFIED", obj)
        async with watch.Watch().stream(
            self.custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            NS,
            DEPLOYMENTS,
            resource_version=listing["metadata"]["resourceVersion"],
            timeout_seconds=240,
        ) as stream:
            async for event in stream:
                self._record(event["type"], event["object"])

    def _record(self, kind: str, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        now = time.perf_counter()
        if kind == "DELETED":
            self.gone[name] = now
        elif kind in ("ADDED", "MODIFIED"):
            self.gone.pop(name, None)
            self.history.setdefault(name, []).append((now, obj))
        self._changed.set()

    def latest(self, name: str) -> Obj | None:
        versions = self.history.get(name)
        return versions[-1][1] if versions and name not in self.gone else None

    def first(
        self, name: str, check: Callable[[Obj], bool], since: float, start: int = 0
    ) -> float | None:
        """Arrival time of the first version after ``since`` (from the ``start``-th version
        on) that passes ``check``."""
        for at, obj in self.history.get(name, [])[start:]:
            if at >= since and check(obj):
                return at
        return None

    async def until(
        self, names: Iterable[str], check: Callable[[Obj], bool], since: float, timeout: float
    ) -> dict[str, float]:
        """Wait until every named object passed ``check``; return when each did. Each wake
        checks only the versions that arrived since the last: checking every version of a
        thousand objects on every event kept the bench busy for minutes, so the watch fell
        behind and its arrival times (the figures) came late."""
        pending, done = set(names), {}
        checked: dict[str, int] = {}
        deadline = time.perf_counter() + timeout
        while True:
            for name in list(pending):
                start = checked.get(name, 0)
                if (at := self.first(name, check, since, start)) is not None:
                    done[name] = at
                    pending.discard(name)
                checked[name] = len(self.history.get(name, []))
            if not pending:
                return done
            await self._wait_change(deadline, lambda: self._describe(pending))

    async def until_gone(self, names: Iterable[str], timeout: float) -> None:
        pending = set(names)
        deadline = time.perf_counter() + timeout
        while pending - set(self.gone):
            await self._wait_change(deadline, lambda: f"{len(pending - set(self.gone))} left")

    async def _wait_change(self, deadline: float, describe: Callable[[], str]) -> None:
        left = deadline - time.perf_counter()
        try:
            if left <= 0:
                raise TimeoutError
            await asyncio.wait_for(self._changed.wait(), left)
        except TimeoutError:
            raise TimeoutError(f"timed out; {describe()}") from None
        self._changed.clear()

    def _describe(self, pending: set[str]) -> str:
        name = sorted(pending)[0]
        status = (self.latest(name) or {}).get("status") or {}
        conds = {c["type"]: c.get("reason") for c in status.get("conditions") or []}
        return (
            f"{len(pending)} not ready; {name}: readyReplicas={status.get('readyReplicas')} "
            f"phase={status.get('phase')} conditions={conds}"
            + (f"; last watch error: {self.last_error}" if self.last_error else "")
        )


# -- the stack --------------------------------------------------------------------------------


@dataclass
class Stack:
    workdir: Path
    cluster: LocalCluster
    e2b: localstack.E2BLocal | None = None
    operator: localstack.Operator | None = None
    gateway: localstack.Gateway | None = None

    def stop(self) -> None:
        for proc in (self.gateway, self.operator, self.e2b):
            if proc is not None:
                try:
                    proc.stop()
                except Exception as exc:  # keep stopping the rest
                    print(f"warning: stopping pid {proc.pid}: {exc}", file=sys.stderr)
        self.cluster.stop()


def start_stack(workdir: Path, sizes: Sizes, log: Callable[[str], None]) -> Stack:
    cluster = LocalCluster(workdir / "kube", binaries.resolve(log=log), log=log)
    stack = Stack(workdir, cluster)
    started = time.perf_counter()
    cluster.start()
    cluster.install_crds(ROOT / "crds")
    log(f"cluster ready in {time.perf_counter() - started:.1f}s at {cluster.state.server}")
    cap = max(400, sizes.scale + 100)  # the scale row's sandboxes, and room to replace some
    stack.e2b = localstack.start_e2b_local(workdir, "--max-sandboxes", str(cap))
    localstack.store_api_key(cluster, stack.e2b)
    stack.operator = localstack.start_operator(workdir, cluster, stack.e2b)
    cluster.kubectl("create", "namespace", NS)
    cluster.kubectl("apply", "-f", str(ROOT / "manifests/install/gateway-rbac.yaml"))
    stack.gateway = localstack.start_gateway(workdir, cluster, NS)
    log(f"e2b-local pid {stack.e2b.pid}, operator pid {stack.operator.pid}")
    return stack


def rss_mb(pid: int) -> float | None:
    """VmRSS of a process in MB, None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def host_busy_seconds() -> tuple[float, float]:
    """(CPU seconds all cores spent busy, CPU seconds they had) since boot."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - idle) / hz, sum(ticks) / hz


def cpu_shares(stack: Stack) -> dict[str, float]:
    """CPU seconds so far of the stack's processes, the bench's own and the host's."""
    assert stack.operator is not None and stack.e2b is not None and stack.cluster.state
    pids = {"operator": stack.operator.pid, "e2b-local": stack.e2b.pid}
    pids |= {n: p for n, p in stack.cluster.state.pids.items() if n in ("kube-apiserver", "etcd")}
    shares = {name: cpu_seconds(pid) for name, pid in pids.items()}
    shares["bench"] = sum(os.times()[:2])
    shares["host busy"], shares["host had"] = host_busy_seconds()
    return shares


def leftovers(workdir: Path) -> tuple[list[str], list[int]]:
    """Mounts and processes that still refer to the workdir."""
    mounts = [
        line
        for line in subprocess.run(["mount"], capture_output=True, text=True).stdout.splitlines()
        if str(workdir) in line
    ]
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if str(workdir).encode() in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                pass
    return mounts, pids


def clean_up(workdir: Path, log: Callable[[str], None]) -> bool:
    """Kill what is left of our own processes, unmount our mounts, keep the logs."""
    mounts, pids = leftovers(workdir)
    for pid in pids:
        log(f"warning: process {pid} outlived the stack; killing it")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for line in reversed(mounts):
        target = line.split(" on ", 1)[1].split(" type ", 1)[0]
        log(f"warning: mount left behind: {target}; unmounting")
        subprocess.run(["umount", "-l", target], check=False)
    mounts, pids = leftovers(workdir)
    logs = Path(tempfile.gettempdir()) / f"{workdir.name}-logs"
    shutil.copytree(workdir / "logs", logs, dirs_exist_ok=True)
    shutil.copytree(workdir / "kube" / "logs", logs / "kube", dirs_exist_ok=True)
    if mounts or pids:
        log(f"ERROR: still left: mounts {mounts} pids {pids}; not removing {workdir}")
        return False
    shutil.rmtree(workdir, ignore_errors=True)
    log(f"cleaned up: no mounts, no processes left; logs kept in {logs}")
    return True


# -- measuring --------------------------------------------------------------------------------


@dataclass
class Bench:
    stack: Stack
    custom: client.CustomObjectsApi
    tracker: Tracker
    sizes: Sizes
    results: Results
    log: Callable[[str], None]
    template_ids: dict[str, str] = field(default_factory=dict)

    async def create(self, obj: Obj) -> None:
        plural = DEPLOYMENTS if obj["kind"] == "E2BDeployment" else TEMPLATES
        await self.custom.create_namespaced_custom_object(GROUP, VERSION, NS, plural, obj)

    async def delete(self, name: str) -> None:
        await self.custom.delete_namespaced_custom_object(GROUP, VERSION, NS, DEPLOYMENTS, name)

    async def template_ready(self) -> None:
        await self.create(template_manifest(TEMPLATE))
        await self.create(bench_responsiveness.slow_template(template_manifest))
        for name in (TEMPLATE, bench_responsiveness.SLOW_TEMPLATE):
            await self.wait_template(name)

    async def wait_template(self, name: str, timeout: float = 600) -> None:
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            obj = await self.custom.get_namespaced_custom_object(
                GROUP, VERSION, NS, TEMPLATES, name
            )
            if is_true(obj, "Ready"):
                self.log(f"template {name} Ready after {time.perf_counter() - started:.1f}s")
                self.template_ids[name] = obj["status"]["templateID"]
                return
            await asyncio.sleep(0.5)
        raise TimeoutError(f"template {name} not Ready after {timeout}s: {obj.get('status')}")

    async def scale(self, name: str, replicas: int) -> None:
        """Set replicas through the scale subresource (as kubectl scale and an HPA do)."""
        await self.custom.patch_namespaced_custom_object_scale(
            GROUP,
            VERSION,
            NS,
            DEPLOYMENTS,
            name,
            {"spec": {"replicas": replicas}},
            _content_type=MERGE_PATCH,
        )

    async def slow_app(self) -> None:
        """An app healthy 2 s after start (default health-check settings)."""
        await bench_responsiveness.slow_app(
            self, partial(deployment_manifest, checks=None), ready_with, percentile
        )

    async def killed_sandbox(self) -> None:
        """A sandbox killed outside the operator."""
        await bench_responsiveness.killed_sandbox(self, deployment_manifest, ready_with, percentile)

    async def e2b_calls(self) -> dict[str, int]:
        """Control-plane calls e2b-local answered so far, by route."""
        return await self.e2b_admin("GET", "calls")

    async def creates_refused(self) -> int:
        """Creates e2b-local's rate limit refused (429), on either create route."""
        calls = await self.e2b_calls()
        return sum(calls.get(f"refused POST {r}", 0) for r in ("/v2/sandboxes", "/sandboxes"))

    async def e2b_admin(self, method: str, what: str, body: Obj | None = None) -> Any:
        e2b = self.stack.e2b
        assert e2b is not None
        async with httpx.AsyncClient(timeout=10) as http:
            resp = await http.request(
                method, f"{e2b.url}/admin/{what}", json=body, headers={"X-API-Key": e2b.api_key}
            )
            resp.raise_for_status()
            return resp.json()

    async def sandbox_count(self) -> int:
        e2b = self.stack.e2b
        assert e2b is not None
        pages = AsyncSandbox.list(
            query=SandboxQuery(metadata={"k8s-namespace": NS}),
            limit=100,
            api_key=e2b.api_key,
            api_url=e2b.url,
            sandbox_url=e2b.url,
        )
        count = 0
        while pages.has_next:
            count += len(await pages.next_items())
        return count

    async def no_sandboxes(self, timeout: float) -> None:
        deadline = time.perf_counter() + timeout
        while (left := await self.sandbox_count()) > 0:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{left} sandbox(es) still exist after {timeout}s")
            await asyncio.sleep(0.5)

    async def apply_to_ready(self) -> None:
        """Sequential one-replica deployments: create returned -> Ready observed."""
        times, firsts = [], []
        names = [f"p-{i}" for i in range(self.sizes.apply_n)]
        for name in names:
            await self.create(deployment_manifest(name, 1))
            t0 = time.perf_counter()
            ready = await self.tracker.until([name], ready_with(1), t0, timeout=60)
            times.append(ready[name] - t0)
            first = self.tracker.first(name, written_by_operator, t0)
            firsts.append((first or ready[name]) - t0)
        p50, p95 = percentile(times, 0.5), percentile(times, 0.95)
        self.results.add(
            "apply-to-Ready, 1 replica",
            f"p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms (n={len(times)})",
            "p50 <= 300 ms",
            p50 <= 0.3,
        )
        self.results.notes.append(
            f"apply-to-Ready: first status write after p50 {percentile(firsts, 0.5) * 1000:.0f}"
            f" ms; all: {', '.join(f'{t * 1000:.0f}' for t in times)} ms"
        )
        started = time.perf_counter()
        await asyncio.gather(*(self.delete(n) for n in names))
        await self.tracker.until_gone(names, timeout=120)
        await self.no_sandboxes(timeout=60)
        self.log(f"deleted {len(names)} deployments in {time.perf_counter() - started:.1f}s")

    async def gateway(self) -> None:
        """The REST gateway: execute overhead against the toolkit, SSE line latency."""
        assert self.stack.gateway is not None
        await bench_gateway.measure(
            self.custom.api_client,
            self.stack.cluster,
            self.stack.gateway.url,
            NS,
            self.sizes.executions,
            self.results.add,
            self.results.notes,
        )
        await self.custom.delete_namespaced_custom_object(
            GROUP, VERSION, NS, DEPLOYMENTS, bench_gateway.NAME
        )
        await self.tracker.until_gone([bench_gateway.NAME], timeout=120)
        await self.no_sandboxes(timeout=60)

    async def scale_up(self) -> None:
        """One deployment, 0 -> N replicas through the scale subresource."""
        n, name = self.sizes.replicas, "scale"
        await self.create(deployment_manifest(name, 0))
        await self.tracker.until([name], ready_with(0), 0, timeout=60)
        metrics = Metrics(self.stack.cluster)
        writes = await metrics.writes()
        await self.scale(name, n)
        t0 = time.perf_counter()
        ready = await self.tracker.until([name], ready_with(n), t0, timeout=300)
        took = ready[name] - t0
        writes = Metrics.delta(writes, await metrics.writes())
        self.results.add(
            f"0 -> {n} replicas (scale subresource)", f"{took:.2f} s", "<= 5 s", took <= 5
        )
        self.results.notes.append(f"scale-up progress: {self.progress(name, t0)}")
        self.results.notes.append(f"API writes while scaling up: {Metrics.detail(writes)}")
        await self.delete(name)
        await self.tracker.until_gone([name], timeout=120)
        await self.no_sandboxes(timeout=120)
        await bench_responsiveness.ratios(
            self, f"0 -> {n} replicas", took, self.template_ids[TEMPLATE], n, 0.8
        )

    async def scale_up_pro(self) -> None:
        """0 -> N replicas under E2B's Pro rate limit (5 creates/s, e2b-local and operator)."""
        stack, n, name = self.stack, self.sizes.replicas, "scale-pro"
        assert stack.e2b is not None and stack.operator is not None
        stack.operator.stop()
        pro = {"E2B_OPERATOR_RATE_PRESET": "pro"}
        stack.operator = localstack.start_operator(stack.workdir, stack.cluster, stack.e2b, pro)
        # The rate only: the deployments of earlier phases hold sandboxes the cap would count.
        await self.e2b_admin("POST", "limits", {"preset": "pro", "concurrent_sandboxes": None})
        try:
            await self.create(deployment_manifest(name, 0))
            await self.tracker.until([name], ready_with(0), 0, timeout=60)
            refused_before = await self.creates_refused()
            await self.scale(name, n)
            t0 = time.perf_counter()
            ready = await self.tracker.until([name], ready_with(n), t0, timeout=300)
            took = ready[name] - t0
            refused = await self.creates_refused() - refused_before
        finally:
            await self.e2b_admin("DELETE", "limits")
        self.results.add(
            f"0 -> {n} replicas under Pro limits",
            f"{took:.2f} s, {refused} create(s) refused (429)",
            f"~{n / 5:.0f} s (what 5 creates/s allows)",
            None,
        )
        await self.delete(name)
        await self.tracker.until_gone([name], timeout=120)

    async def many_deployments(self) -> None:
        """N one-replica deployments created concurrently; until all are Ready."""
        names = [f"d-{i}" for i in range(self.sizes.deployments)]
        t0 = time.perf_counter()
        await asyncio.gather(*(self.create(deployment_manifest(n, 1)) for n in names))
        created = time.perf_counter() - t0
        ready = await self.tracker.until(names, ready_with(1), t0, timeout=600)
        took = max(ready.values()) - t0
        self.results.add(
            f"{len(names)} deployments x 1 replica",
            f"{took:.2f} s (creates {created:.2f} s)",
            "<= 20 s",
            took <= 20,
        )
        spread = sorted(t - t0 for t in ready.values())
        self.results.notes.append(
            f"{len(names)} deployments Ready at: first {spread[0]:.1f} s, "
            f"median {percentile(spread, 0.5):.1f} s, last {spread[-1]:.1f} s"
        )
        await bench_responsiveness.ratios(
            self, f"{len(names)} deployments", took, self.template_ids[TEMPLATE], len(names), 0.6
        )

    async def at_scale(self) -> None:
        """The scale row: N one-replica deployments with the default health interval, created
        as fast as the apiserver takes them; Ready spread against creation, RSS, idle CPU."""
        await self.delete_all()
        names = [f"s-{i}" for i in range(self.sizes.scale)]
        created: dict[str, float] = {}
        gate = asyncio.Semaphore(32)

        async def create(name: str) -> None:
            async with gate:
                await self.create(deployment_manifest(name, 1, checks=None))
                created[name] = time.perf_counter()

        metrics = Metrics(self.stack.cluster)
        writes = await metrics.writes()
        cpu0 = cpu_shares(self.stack)
        t0, wall0, ended = time.perf_counter(), time.time(), Counter(self.tracker.ended)
        await asyncio.gather(*(create(n) for n in names))
        ready = await self.tracker.until(names, ready_with(1), t0, timeout=900)
        took = max(ready.values()) - t0
        cpu = {k: v - cpu0[k] for k, v in cpu_shares(self.stack).items()}
        writes = Metrics.delta(writes, await metrics.writes())
        self.results.notes.append(f"API writes until all were Ready: {Metrics.detail(writes)}")
        named = sum(v for k, v in cpu.items() if not k.startswith("host"))
        self.results.notes.append(
            f"CPU seconds while {len(names)} deployments became Ready: the host's cores were "
            f"busy {cpu['host busy']:.0f} of {cpu['host had']:.0f}; "
            + ", ".join(f"{k} {v:.0f}" for k, v in cpu.items() if not k.startswith("host"))
            + f", the rest (sandboxes, crun, kernel) {cpu['host busy'] - named:.0f}"
        )
        # When the operator made each Ready status, by its condition's lastTransitionTime
        # (whole seconds): the watch above may see them late, and after a watch ends the
        # listing that follows brings every change since in one burst.
        written = sorted(ready_since(self.tracker.latest(n) or {}) - wall0 for n in names)
        self.results.add(
            f"{len(names)} deployments x 1 replica",
            f"{took:.1f} s (creates {max(created.values()) - t0:.1f} s)",
            "<= 60 s",
            took <= 60,
        )
        spread = sorted(t - t0 for t in ready.values())
        lag = sorted(ready[n] - created[n] for n in names)
        self.results.notes.append(
            f"{len(names)} deployments Ready at (s after the first create): "
            + ", ".join(f"p{q} {percentile(spread, q / 100):.1f}" for q in (10, 25, 50, 75, 90))
            + f"; created-to-Ready p50 {percentile(lag, 0.5):.1f} s, "
            f"p90 {percentile(lag, 0.9):.1f} s; by the Ready condition's time: "
            + ", ".join(f"p{q} {percentile(written, q / 100):.0f}" for q in (10, 50, 90, 100))
            + f"; watches that ended (then listed again): {dict(self.tracker.ended - ended)}"
        )
        self.memory(len(names), 300)
        # Idle begins after each sandbox's first regular check (30 s after its create's):
        # that check sees the bench main script has exited, a change status reports.
        await asyncio.sleep(max(0.0, max(ready.values()) + 31 - time.perf_counter()))
        await self.idle_writes(checks="default health interval, 30 s")
        started = time.perf_counter()
        await self.delete_all()
        self.log(f"deleted {len(names)} deployments in {time.perf_counter() - started:.1f}s")
        await bench_responsiveness.ratios(
            self, f"{len(names)} deployments", took, self.template_ids[TEMPLATE], len(names), 0.6
        )

    async def delete_all(self) -> None:
        """Delete every deployment of the namespace; wait until their sandboxes are gone."""
        names = [n for n in self.tracker.history if n not in self.tracker.gone]
        gate = asyncio.Semaphore(32)

        async def delete(name: str) -> None:
            async with gate:
                with contextlib.suppress(ApiException):
                    await self.delete(name)

        await asyncio.gather(*(delete(n) for n in names))
        await self.tracker.until_gone(names, timeout=600)
        await self.no_sandboxes(timeout=600)

    def progress(self, name: str, t0: float) -> str:
        """readyReplicas over time as the watch saw it (to spot the slow-start steps)."""
        seen, last = [], None
        for at, obj in self.tracker.history.get(name, []):
            ready = (obj.get("status") or {}).get("readyReplicas") or 0
            if at >= t0 and ready != last:
                seen.append(f"{at - t0:.1f}s:{ready}")
                last = ready
        return " ".join(seen)

    def memory(self, deployments: int, goal_mb: float) -> None:
        stack = self.stack
        assert stack.operator is not None and stack.e2b is not None
        rss = rss_mb(stack.operator.pid)
        local = rss_mb(stack.e2b.pid)
        self.results.add(
            f"operator RSS, {deployments} deployments",
            f"{rss:.0f} MB" if rss is not None else "process gone",
            f"<= {goal_mb:.0f} MB",
            rss is not None and rss <= goal_mb,
        )
        self.results.add(
            "e2b-local RSS (server, for context)",
            f"{local:.0f} MB" if local is not None else "process gone",
            "-",
            None,
        )

    async def idle_writes(self, checks: str = "health every 5 s") -> None:
        """Writes to e2btemplates/e2bdeployments/events while nothing changes."""
        metrics = Metrics(self.stack.cluster)
        settled = await metrics.settle(quiet=5, timeout=60)
        self.log(f"writes settled after {settled:.1f}s; idle for {self.sizes.idle_seconds:.0f}s")
        assert self.stack.operator is not None
        pid = self.stack.operator.pid
        before, cpu_before = await metrics.writes(), cpu_seconds(pid)
        calls_before = await self.e2b_calls()
        await asyncio.sleep(self.sizes.idle_seconds)
        after, cpu = await metrics.writes(), cpu_seconds(pid) - cpu_before
        calls = {k: v - calls_before.get(k, 0) for k, v in (await self.e2b_calls()).items()}
        per_minute = {k: v * 60 / self.sizes.idle_seconds for k, v in calls.items() if v}
        deployments = len([n for n in self.tracker.history if n not in self.tracker.gone])
        self.results.add(
            f"E2B control-plane calls at idle ({deployments} deployments)",
            f"{sum(per_minute.values()):.0f}/min",
            "one listing per period",
            None,
        )
        self.results.notes.append(
            "idle E2B calls per minute: "
            + ", ".join(f"{k} {v:.0f}" for k, v in sorted(per_minute.items()))
        )
        self.results.add(
            f"operator CPU at idle ({deployments} deployments)",
            f"{100 * cpu / self.sizes.idle_seconds:.0f} % of a core ({checks})",
            "<= 25 %",
            cpu / self.sizes.idle_seconds <= 0.25,
        )
        delta = Metrics.delta(before, after)
        total = sum(delta.values())
        self.results.add(
            f"API writes in {self.sizes.idle_seconds:.0f} s idle",
            f"{total:.0f}",
            "0",
            total == 0,
        )
        if delta:
            self.results.notes.append(f"idle writes: {Metrics.detail(delta)}")


class Metrics:
    """apiserver_request_total of the kube-apiserver, read with the admin token."""

    LINE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)")
    LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

    def __init__(self, cluster: LocalCluster) -> None:
        assert cluster.state is not None
        self.url = f"{cluster.state.server}/metrics"
        self.headers = {"Authorization": f"Bearer {cluster.state.token}"}
        self.tls = ssl.create_default_context(cafile=str(cluster.workdir / "pki" / "ca.crt"))

    async def writes(self) -> dict[tuple[str, str], float]:
        """(verb, resource) -> count of write requests on the watched resources."""
        async with httpx.AsyncClient(verify=self.tls, timeout=10) as http:
            resp = await http.get(self.url, headers=self.headers)
            resp.raise_for_status()
        totals: dict[tuple[str, str], float] = {}
        for line in resp.text.splitlines():
            if m := self.LINE.match(line):
                labels = dict(self.LABEL.findall(m["labels"]))
                verb, resource = labels.get("verb", ""), labels.get("resource", "")
                if verb in WRITE_VERBS and resource in WATCHED_RESOURCES:
                    sub = labels.get("subresource", "")
                    key = (verb, f"{resource}/{sub}" if sub else resource)
                    totals[key] = totals.get(key, 0) + float(m["value"])
        return totals

    @staticmethod
    def delta(
        before: dict[tuple[str, str], float], after: dict[tuple[str, str], float]
    ) -> dict[tuple[str, str], float]:
        """The writes made between two readings of ``writes``."""
        keys = set(before) | set(after)
        return {k: d for k in keys if (d := after.get(k, 0) - before.get(k, 0))}

    @staticmethod
    def detail(delta: dict[tuple[str, str], float]) -> str:
        return ", ".join(f"{v:.0f} {verb} {res}" for (verb, res), v in sorted(delta.items()))

    async def settle(self, quiet: float, timeout: float) -> float:
        """Wait until ``quiet`` seconds pass without a write (at most ``timeout``)."""
        started = time.perf_counter()
        last = await self.writes()
        while time.perf_counter() - started < timeout:
            await asyncio.sleep(quiet)
            now = await self.writes()
            if now == last:
                break
            last = now
        return time.perf_counter() - started


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    if q == 0.5:
        return statistics.median(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


async def kube_api(kubeconfig: Path) -> client.ApiClient:
    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    cfg.connection_pool_maxsize = 200
    return client.ApiClient(configuration=cfg)


async def measure(
    stack: Stack,
    sizes: Sizes,
    results: Results,
    log: Callable[[str], None],
    *,
    only: str | None = None,
) -> None:
    api = await kube_api(stack.cluster.kubeconfig)
    custom = client.CustomObjectsApi(api)
    tracker = Tracker(custom)
    watcher = asyncio.create_task(tracker.run())
    bench = Bench(stack, custom, tracker, sizes, results, log)
    try:
        await bench.template_ready()
        if only is not None:
            log(f"-- {only} only")
            await getattr(bench, only)()
            return
        phases = (
            bench.gateway,
            bench.apply_to_ready,
            bench.slow_app,
            bench.killed_sandbox,
            bench.scale_up,
            bench.many_deployments,
        )
        for phase in phases:
            log(f"-- {phase.__doc__.splitlines()[0]}")
            try:
                await phase()
            except TimeoutError as exc:
                results.add(phase.__name__, "TIMEOUT", "", False)
                results.notes.append(f"{phase.__name__}: {exc}")
        log("-- idle")
        await bench.idle_writes()
        bench.memory(bench.sizes.deployments, 200)
        log(f"-- scale: {sizes.scale} one-replica deployments, default health checks")
        try:
            await bench.at_scale()
        except TimeoutError as exc:
            results.add("at_scale", "TIMEOUT", "", False)
            results.notes.append(f"at_scale: {exc}")
        log("-- 0 -> N under Pro limits (operator restarted with E2B_OPERATOR_RATE_PRESET=pro)")
        try:
            await bench.scale_up_pro()
        except TimeoutError as exc:
            results.add("scale_up_pro", "TIMEOUT", "", False)
            results.notes.append(f"scale_up_pro: {exc}")
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watcher
        await api.close()


ROWS = (
    "gateway",
    "apply_to_ready",
    "slow_app",
    "killed_sandbox",
    "scale_up",
    "many_deployments",
    "at_scale",
    "scale_up_pro",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--scale", type=int, help="deployments of the scale row (default 1000)")
    parser.add_argument(
        "--only",
        choices=ROWS,
        help="run only this row (at_scale: the scale row; the others for iterating)",
    )
    parser.add_argument("--timeout", type=float, default=3600, help="whole-run limit (s)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    if args.scale is not None:
        sizes = replace(sizes, scale=args.scale)
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {msg}", file=sys.stderr, flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="e2b-bench-"))
    results = Results()
    stack: Stack | None = None
    aborted = ""
    try:
        stack = start_stack(workdir, sizes, log)
        run = measure(stack, sizes, results, log, only=args.only)
        asyncio.run(asyncio.wait_for(run, args.timeout))
    except Exception as exc:  # report, then clean up
        aborted = f"run aborted: {type(exc).__name__}: {exc}"
        traceback.print_exc()
        results.notes.append(aborted)
    finally:
        log("stopping the stack")
        if stack is not None:
            stack.stop()
        clean = clean_up(workdir, log)
    results.print()
    print(f"wall time: {time.perf_counter() - started:.1f} s")
    # Missed goals are marked in the table; only a broken run or a leak fails the target.
    return 0 if clean and not aborted else 1


if __name__ == "__main__":
    sys.exit(main())
