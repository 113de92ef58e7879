"""`make chaos`: faults while 20 E2BDeployments scale; figures printed, not asserted.

Each scenario scales every deployment to a new random size (1-4 sandboxes), injects one fault
at a random moment, ends it, and then measures:

- convergence: seconds from the end of the fault until every deployment's status says done
  (observedGeneration current, readyReplicas == replicas, Ready=True: what kstatus, Argo CD
  and Flux read as done) and what E2B lists agrees with it
  (exactly one sandbox per slot, and status.sandboxes naming exactly those);
- orphans: sandboxes that belong to no slot (their deployment is gone or the slot is above
  replicas), duplicates: a second sandbox for one slot, lost status: deployments whose
  status.sandboxes disagrees with the listing, each counted when the status first says done;
- bound: where a physical limit bounds the figure, that limit and the ratio to it, as the
  benchmarks print them: making the sandboxes the scale (or, for e2b-local's kill, the
  restart) needs takes at least what the runtime takes for as many straight through the SDK,
  each with its config, main script and one check, at the operator's create concurrency
  (measured right after convergence); with E2B's Pro limits on, at least 5 creates/s; after a
  leader's kill -9, the lease duration a standby must wait out comes first.

Everything runs on a fresh local stack in a temporary directory (control plane, e2b-local,
the operator as `kopf run`), stopped by PID at the end. About 10 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from e2b import AsyncSandbox, SandboxQuery
from kubernetes_asyncio import client, config

from e2b_operator import localstack
from e2b_operator.api import GROUP, VERSION
from e2b_operator.controlplane import binaries, processes
from e2b_operator.controlplane.cluster import LocalCluster
from e2b_operator.reconcile.observed import (
    MANAGED_BY,
    META_DEPLOYMENT_UID,
    META_INDEX,
    META_MANAGED_BY,
)

ROOT = Path(__file__).resolve().parent.parent
NS = "chaos"
PLURAL = "e2bdeployments"
MERGE_PATCH = "application/merge-patch+json"
LEASE_ENV = {"E2B_OPERATOR_LEASE": "e2b-system/e2b-operator"}  # the install's defaults
LEASE_SECONDS = 12.0  # handlers/leader.py's default lease duration
PRO_CREATES_PER_S = 5.0  # E2B Pro (e2b-local's `pro` preset)
CREATE_CONCURRENCY = 32  # the operator's default create budget (E2B_OPERATOR_CREATE_BATCH_MAX)
HOST_SANDBOXES = 100  # e2b-local's default --max-sandboxes


@dataclass
class Figures:
    name: str
    convergence: float | None  # None: not converged within the timeout
    orphans: int
    duplicates: int
    lost_status: int
    note: str = ""
    bound: float | None = None
    """The physical limit of this figure, in seconds (None: none applies)."""


@dataclass
class Bound:
    """A figure's physical limit: ``fixed`` seconds the fault imposes (a lease to wait out),
    then making ``creates`` sandboxes, which takes at least as long as the runtime needs for
    that many straight through the SDK (measured after convergence) and, with E2B's limits
    on, ``creates`` at ``rate`` per second."""

    fixed: float = 0.0
    creates: int = 0
    rate: float | None = None

    async def seconds(self, stack: Stack) -> float | None:
        # Within e2b-local's sandbox cap beside the deployments' own: fewer, scaled up.
        room = HOST_SANDBOXES - len(await stack.listed()) - 5
        sample = min(self.creates, room)
        try:
            making = await stack.straight(sample) * self.creates / sample if sample > 0 else 0.0
        except Exception as exc:  # the bound is a reference, not the figure: say why it is missing
            print(f"   (bound not measured: {type(exc).__name__}: {exc})"[:200], flush=True)
            return None
        if self.rate:
            # A full bucket lets the first `rate` creates go at once, then `rate` per second.
            making = max(making, max(self.creates - self.rate, 0) / self.rate)
        return (self.fixed + making) or None


class Stack:
    """The local stack and the faults that can be done to it."""

    def __init__(self, workdir: Path, deployments: int, seed: int) -> None:
        self.workdir = workdir
        self.n = deployments
        self.rng = random.Random(seed)
        self.cluster = LocalCluster(workdir / "kube", binaries.resolve())
        self.e2b: localstack.E2BLocal | None = None
        self.operators: list[localstack.Operator] = []
        self.started = 0
        self.spawned: dict[int, float] = {}
        self.api: client.ApiClient | None = None

    # -- processes ---------------------------------------------------------------------------

    def start(self) -> None:
        self.cluster.start()
        self.cluster.install_crds(ROOT / "crds")
        self.e2b = localstack.start_e2b_local(self.workdir / "e2b")
        localstack.store_api_key(self.cluster, self.e2b)
        self.cluster.kubectl("create", "namespace", NS)

    def start_operator(self, env: dict[str, str] | None = None) -> localstack.Operator:
        assert self.e2b is not None
        self.started += 1
        spawned = time.time()
        op = localstack.start_operator(
            self.workdir / f"operator-{self.started}", self.cluster, self.e2b, env
        )
        self.spawned[op.pid] = spawned
        self.operators.append(op)
        return op

    def up_after(self, op: localstack.Operator) -> float | None:
        """Seconds from spawning ``op`` until kopf ran its startup handler (imports, the
        Kubernetes client, the lease; not yet watching), from its log."""
        try:
            text = op.log.read_text(errors="replace")
        except OSError:
            return None
        for line in text.splitlines():
            if "Activity 'startup' succeeded" in line:
                stamp = datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                return stamp - self.spawned[op.pid]
        return None

    def kill(self, op: localstack.Operator) -> None:
        with contextlib.suppress(ProcessLookupError):  # it may have exited on its own
            os.kill(op.pid, signal.SIGKILL)
        processes.alive(op.pid)  # reap
        self.operators.remove(op)

    def replace_exited(self, env: dict[str, str]) -> int:
        """Start a new operator for each that exited (as its Deployment would); how many."""
        gone = [op for op in self.operators if not processes.alive(op.pid)]
        for op in gone:
            self.kill(op)
            self.start_operator(env)
        return len(gone)

    def leader(self) -> localstack.Operator | None:
        out = self.cluster.kubectl(
            "-n", "e2b-system", "get", "lease", "e2b-operator", "-o", "json", check=False
        )
        if out.returncode:
            return None
        holder = json.loads(out.stdout)["spec"].get("holderIdentity") or ""
        return next((op for op in self.operators if holder.endswith(f"-{op.pid}")), None)

    def restart_e2b_local(self, *, kill: bool) -> None:
        assert self.e2b is not None
        old = self.e2b
        if kill:
            os.kill(old.pid, signal.SIGKILL)
            while processes.alive(old.pid):
                time.sleep(0.05)
        else:
            old.stop()
        port = int(old.url.rsplit(":", 1)[1])
        self.e2b = localstack.start_e2b_local(self.workdir / "e2b", api_key=old.api_key, port=port)

    def restart_component(self, name: str, down: float) -> None:
        """SIGTERM a control-plane process, keep it down ``down`` s, start the same command."""
        state = self.cluster.state
        assert state is not None
        pid = state.pids[name]
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
        processes.stop(pid, name)
        time.sleep(down)
        log = self.cluster.logs / f"{name}.log"
        state.pids[name] = new = processes.spawn(cmd, log)
        self.cluster._save()  # so that stop() finds the new PID
        processes.wait_until(
            lambda: self.cluster.kubectl("get", "--raw=/readyz", check=False).returncode == 0,
            pid=new,
            name=name,
            log_path=log,
            timeout=120,
        )

    def e2b_admin(self, method: str, path: str, body: Any = None) -> int:
        assert self.e2b is not None
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.e2b.url}{path}",
            data=data,
            method=method,
            headers={"X-API-Key": self.e2b.api_key, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def stop(self) -> None:
        for op in list(self.operators):
            op.stop()
        if self.e2b:
            self.e2b.stop()
        self.cluster.stop()

    # -- Kubernetes and E2B views ------------------------------------------------------------

    async def connect(self) -> None:
        await config.load_kube_config(config_file=str(self.cluster.kubeconfig))
        self.api = client.ApiClient()

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    async def create_deployments(self) -> None:
        template = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "E2BTemplate",
            "metadata": {"name": "app"},
            "spec": {
                "type": "pythonBase",
                "requirements": {"runtime": "python3.11", "cpuCores": 1, "memoryMB": 128},
                "files": {"mainScript": "import time\ntime.sleep(86400)"},
                "hooks": {"healthCheck": "true"},
            },
        }
        await self.custom.create_namespaced_custom_object(
            GROUP, VERSION, NS, "e2btemplates", template
        )
        for i in range(self.n):
            body = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "E2BDeployment",
                "metadata": {"name": f"d{i:02d}"},
                "spec": {
                    "templateRef": {"name": "app"},
                    "replicas": 1,
                    "healthCheck": {"intervalSeconds": 10, "timeoutSeconds": 10},
                },
            }
            await self.custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, body)

    async def scale_all(self, sizes: range = range(1, 5)) -> None:
        """Every deployment to a new random size (another than it has)."""
        items = (await self.custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL))[
            "items"
        ]
        for d in items:
            now = d["spec"]["replicas"]
            size = self.rng.choice([s for s in sizes if s != now] or [now])
            await self.custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                NS,
                PLURAL,
                d["metadata"]["name"],
                {"spec": {"replicas": size}},
                _content_type=MERGE_PATCH,  # type: ignore[call-arg]
            )

    async def replicas(self) -> dict[str, int]:
        items = (await self.custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL))[
            "items"
        ]
        return {d["metadata"]["name"]: d["spec"]["replicas"] for d in items}

    async def straight(self, count: int) -> float:
        """The runtime's own limit: ``count`` sandboxes of the chaos template created straight
        through the SDK at the operator's create concurrency, each given what the operator
        gives it before it is Ready (config file, main script, one health check); seconds."""
        assert self.e2b is not None
        template = await self.custom.get_namespaced_custom_object(
            GROUP, VERSION, NS, "e2btemplates", "app"
        )
        template_id = template["status"]["templateID"]
        kw = {"api_key": self.e2b.api_key, "api_url": self.e2b.url, "sandbox_url": self.e2b.url}
        gate = asyncio.Semaphore(CREATE_CONCURRENCY)

        made: list[AsyncSandbox] = []

        async def one() -> None:
            async with gate:
                sbx = await AsyncSandbox.create(template_id, metadata={"chaos": "bound"}, **kw)
            made.append(sbx)
            await sbx.files.write("/app/instance.json", "{}")
            await sbx.commands.run("python3 /app/main.py > /app/main.log 2>&1", background=True)
            await sbx.commands.run("true")

        started = time.monotonic()
        outcomes = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
        took = time.monotonic() - started
        await asyncio.gather(*(s.kill() for s in made), return_exceptions=True)  # none left
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return took

    async def listed(self) -> list[Any]:
        assert self.e2b is not None
        pages = AsyncSandbox.list(
            query=SandboxQuery(metadata={META_MANAGED_BY: MANAGED_BY}),
            limit=100,
            api_key=self.e2b.api_key,
            api_url=self.e2b.url,
            sandbox_url=self.e2b.url,
        )
        found: list[Any] = []
        while pages.has_next:
            found += await pages.next_items()
        return found

    async def look(self) -> tuple[bool, bool, int, int, int]:
        """(status says done, reality agrees, orphans, duplicates, lost status)."""
        items = (await self.custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL))[
            "items"
        ]
        sandboxes = await self.listed()
        by_uid: dict[str, list[Any]] = {}
        for s in sandboxes:
            by_uid.setdefault(s.metadata.get(META_DEPLOYMENT_UID, ""), []).append(s)
        uids = {d["metadata"]["uid"]: d for d in items}
        orphans = sum(len(ss) for uid, ss in by_uid.items() if uid not in uids)
        duplicates = lost = 0
        done = True
        for uid, d in uids.items():
            replicas = d["spec"]["replicas"]
            status = d.get("status", {})
            done &= (
                status.get("observedGeneration") == d["metadata"]["generation"]
                and status.get("readyReplicas") == replicas
                and status.get("replicas") == replicas
                and any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in status.get("conditions") or []
                )
            )
            mine = by_uid.get(uid, [])
            counts = Counter(int(s.metadata.get(META_INDEX, "-1")) for s in mine)
            orphans += sum(n for i, n in counts.items() if not 0 <= i < replicas)
            duplicates += sum(n - 1 for i, n in counts.items() if 0 <= i < replicas and n > 1)
            named = {e.get("sandboxID") for e in status.get("sandboxes", [])}
            lost += named != {s.sandbox_id for s in mine}
        return done, done and not (orphans or duplicates or lost), orphans, duplicates, lost

    async def converge(self, name: str, since: float, timeout: float, note: str = "") -> Figures:
        """Poll until status and reality agree; the counts are those when status first said
        done (or at the timeout)."""
        claimed: tuple[int, int, int] | None = None
        last = (0, 0, 0)
        error: Exception | None = None
        while time.monotonic() - since < timeout:
            try:
                done, agreed, *counts = await self.look()
            except Exception as exc:  # the apiserver or e2b-local still coming back
                error = exc
                await asyncio.sleep(0.25)
                continue
            last = (counts[0], counts[1], counts[2])
            if done and claimed is None:
                claimed = last
            if agreed:
                return Figures(name, time.monotonic() - since, *(claimed or last), note=note)
            await asyncio.sleep(0.25)
        if error is not None:
            note = f"{note} last error: {error!r}"[:120]
        return Figures(name, None, *(claimed or last), note=note.strip())


async def scenario(
    stack: Stack,
    name: str,
    fault: Callable[[], Awaitable[str]],
    *,
    timeout: float = 90,
    scale: bool = True,
    bound: Bound | None = None,
    settle: Callable[[], object] | None = None,
) -> Figures:
    """Scale, wait a random 0-2 s, run the fault (which returns a note), measure from its end.
    ``bound``: the figure's physical limit, to which the scale adds its creates (the fault
    may add more); ``settle``: undo the fault's lasting part after convergence, before the
    bound is measured."""
    print(f"-- {name}", flush=True)
    if scale:
        before = await stack.replicas()
        await stack.scale_all()
        if bound is not None:
            after = await stack.replicas()
            bound.creates += sum(max(0, n - before.get(d, 0)) for d, n in after.items())
        await asyncio.sleep(stack.rng.uniform(0, 2))
    note = await fault()
    figures = await stack.converge(name, time.monotonic(), timeout, note)
    if settle is not None:
        settle()
    if bound is not None and figures.convergence is not None:
        figures.bound = await bound.seconds(stack)
    print(f"   {_row(figures)}", flush=True)
    return figures


def _row(f: Figures) -> str:
    conv = f"{f.convergence:6.1f}s" if f.convergence is not None else "   n/c "
    bound = ""
    if f.bound:
        ratio = f"{f.convergence / f.bound:4.1f}x" if f.convergence is not None else "   - "
        bound = f"{f.bound:5.1f}s {ratio}"
    return (
        f"{f.name:<40} {conv} {bound:>12} {f.orphans:>7} {f.duplicates:>10} {f.lost_status:>11}"
        f"  {f.note}"
    )


async def run(stack: Stack, rounds: int, fault_seconds: float) -> list[Figures]:
    await stack.connect()
    try:
        return await _scenarios(stack, rounds, fault_seconds)
    finally:
        assert stack.api is not None
        await stack.api.close()


async def _scenarios(stack: Stack, rounds: int, fault_seconds: float) -> list[Figures]:
    results: list[Figures] = []
    op = stack.start_operator()
    await stack.create_deployments()
    results.append(await scenario(stack, "baseline: 20 deployments 0 -> 1", _none, scale=False))
    results.append(await scenario(stack, "baseline: scale, no fault", _none, bound=Bound()))

    for i in range(rounds):

        async def kill_operator() -> str:
            nonlocal op
            stack.kill(op)
            op = stack.start_operator()
            return ""

        figures = await scenario(
            stack, f"kill -9 operator mid-scale ({i + 1})", kill_operator, bound=Bound()
        )
        if (up := stack.up_after(op)) is not None:
            figures.note = f"up (startup handler done) after {up:.1f}s"
        results.append(figures)

    remake = Bound()

    async def kill_e2b() -> str:
        remake.creates = sum((await stack.replicas()).values())  # every sandbox, made again
        await asyncio.to_thread(stack.restart_e2b_local, kill=True)
        return f"all {remake.creates} sandboxes die with it"

    results.append(
        await scenario(stack, "kill -9 e2b-local, restart", kill_e2b, timeout=150, bound=remake)
    )

    for component in ("kube-apiserver", "etcd"):

        async def restart(component: str = component) -> str:
            await asyncio.to_thread(stack.restart_component, component, 3.0)
            return "down 3 s"

        results.append(await scenario(stack, f"restart {component}", restart))

    async def faults() -> str:
        spec = "429:0.1,503:0.111,timeout:0.125"  # 10 % each of all control-plane calls
        assert stack.e2b_admin("POST", "/admin/faults", {"spec": spec}) < 300
        await asyncio.sleep(fault_seconds / 2)
        await stack.scale_all()
        await asyncio.sleep(fault_seconds / 2)
        stack.e2b_admin("DELETE", "/admin/faults")
        return f"{fault_seconds:.0f} s of 30 % 429/503/timeout, scaled twice"

    results.append(await scenario(stack, "30 % 429/503/timeouts", faults, timeout=120))

    pro = Bound(rate=PRO_CREATES_PER_S)

    async def pro_limits() -> str:
        if stack.e2b_admin("POST", "/admin/limits", {"preset": "pro"}) >= 300:
            return "skipped: this e2b-local has no /admin/limits"
        before = await stack.replicas()
        await stack.scale_all(range(4, 6))  # up to 100 sandboxes: Pro's cap, 5 creates/s
        after = await stack.replicas()
        pro.creates = sum(max(0, n - before.get(d, 0)) for d, n in after.items())
        return f"from the scale: {pro.creates} creates"

    figures = await scenario(
        stack,
        "E2B Pro rate limits, scale to 80-100",
        pro_limits,
        scale=False,
        bound=pro,
        settle=lambda: stack.e2b_admin("DELETE", "/admin/limits"),
    )
    results.append(figures)

    # Two replicas with leader election, the install's lease settings (12/8/2 s).
    stack.kill(op)
    first = stack.start_operator(LEASE_ENV)
    await _until(lambda: stack.leader() is first, 60)
    stack.start_operator(LEASE_ENV)
    for i in range(rounds):

        async def kill_leader() -> str:
            exited = stack.replace_exited(LEASE_ENV)
            leader = stack.leader()
            if leader is not None:
                stack.kill(leader)
            stack.start_operator(LEASE_ENV)  # as the Deployment would: the new pod stands by
            return "from the kill" + (f"; {exited} had exited" if exited else "")

        results.append(
            await scenario(
                stack,
                f"2 replicas: kill -9 leader ({i + 1})",
                kill_leader,
                bound=Bound(fixed=LEASE_SECONDS),
            )
        )
    return results


async def _none() -> str:
    return ""


async def _until(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise TimeoutError("no leader")
        await asyncio.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deployments", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2, help="operator and leader kills")
    parser.add_argument("--fault-seconds", type=float, default=60)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="e2b-chaos-"))
    print(f"workdir {workdir} (logs kept), seed {args.seed}", flush=True)
    stack = Stack(workdir, args.deployments, args.seed)
    started = time.monotonic()
    try:
        stack.start()
        results = asyncio.run(run(stack, args.rounds, args.fault_seconds))
    finally:
        stack.stop()
    print(
        f"\n{'scenario':<40} {'conv.':>7} {'bound ratio':>12} {'orphans':>7} {'duplicates':>10}"
        f" {'lost status':>11}"
    )
    print("-" * 93)
    for f in results:
        print(_row(f))
    lost = sum(
        log.read_text(errors="replace").count("lost leadership")
        for log in workdir.glob("operator-*/logs/operator.log")
    )
    print(f"leaders that exited on their own (a renewal missed its deadline): {lost}")
    print(
        f"(conv.: seconds from the fault's end to status and E2B agreeing; n/c: not within the "
        f"timeout; bound: the physical limit and conv./bound; counts when status first said "
        f"done) total {time.monotonic() - started:.0f}s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
