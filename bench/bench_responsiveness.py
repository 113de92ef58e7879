"""Operator responsiveness off the happy path, and the physical limit next to it.

Used by bench_operator.py: an app whose health check passes 2 s after its main script
starts (apply-to-Ready, 2 -> 4 replicas), a sandbox killed outside the operator (noticed,
replaced and Ready), and the same number of sandboxes created straight through the e2b SDK
at the operator's create concurrency against the same e2b-local, bare and with the work the
operator does for a Ready sandbox (the physical limits that scale-up and many deployments are
compared with, as ratios).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

from e2b import AsyncSandbox

from e2b_operator.api.layout import APP_DIR, INSTANCE_CONFIG, MAIN_LOG

SLOW_TEMPLATE = "slow-tpl"
SLOW_MAIN = (
    "import pathlib, time\ntime.sleep(2)\npathlib.Path('/tmp/up').touch()\ntime.sleep(86400)\n"
)
HEALTH_CHECK = "test ! -f /tmp/sick"  # the bench template's check
CREATE_CONCURRENCY = 32  # the operator's default create budget (E2B_OPERATOR_CREATE_BATCH_MAX)
Obj = dict[str, Any]


class BenchLike(Protocol):
    """What these phases use of bench_operator.Bench."""

    tracker: Any
    stack: Any
    results: Any
    log: Callable[[str], None]

    async def create(self, obj: Obj) -> None: ...
    async def delete(self, name: str) -> None: ...
    async def scale(self, name: str, replicas: int) -> None: ...
    async def wait_template(self, name: str) -> None: ...
    async def no_sandboxes(self, timeout: float) -> None: ...


def slow_template(template_manifest: Callable[..., Obj]) -> Obj:
    return template_manifest(SLOW_TEMPLATE, main=SLOW_MAIN, health="test -f /tmp/up")


async def slow_app(
    bench: BenchLike,
    deployment_manifest: Callable[..., Obj],
    ready_with: Callable[[int], Callable[[Obj], bool]],
    percentile: Callable[[list[float], float], float],
    n: int = 5,
) -> None:
    """An app healthy 2 s after start: apply-to-Ready of 1 replica, then 2 -> 4 replicas."""
    times = []
    for i in range(n):
        name = f"slow-{i}"
        await bench.create(deployment_manifest(name, 1, template=SLOW_TEMPLATE))
        t0 = time.perf_counter()
        ready = await bench.tracker.until([name], ready_with(1), t0, timeout=120)
        times.append(ready[name] - t0)
        await bench.delete(name)
    p50 = percentile(times, 0.5)
    bench.results.add(
        "slow app (healthy 2 s after start): apply-to-Ready",
        f"p50 {p50:.2f} s (n={n}; {', '.join(f'{t:.1f}' for t in times)})",
        "p50 <= 3 s",
        p50 <= 3,
    )
    name = "slow-scale"
    await bench.create(deployment_manifest(name, 2, template=SLOW_TEMPLATE))
    await bench.tracker.until([name], ready_with(2), 0, timeout=120)
    await bench.scale(name, 4)
    t0 = time.perf_counter()
    ready = await bench.tracker.until([name], ready_with(4), t0, timeout=120)
    took = ready[name] - t0
    bench.results.add("slow app: 2 -> 4 replicas Ready", f"{took:.2f} s", "<= 3.5 s", took <= 3.5)
    await bench.delete(name)
    await bench.no_sandboxes(timeout=60)


def _sandbox_ids(obj: Obj) -> set[str]:
    return {s["sandboxID"] for s in (obj.get("status") or {}).get("sandboxes") or []}


def _sandbox_of(obj: Obj, index: int) -> str:
    entries = (obj.get("status") or {}).get("sandboxes") or []
    (sandbox_id,) = [s["sandboxID"] for s in entries if s["index"] == index]
    return sandbox_id


async def killed_sandbox(
    bench: BenchLike,
    deployment_manifest: Callable[..., Obj],
    ready_with: Callable[[int], Callable[[Obj], bool]],
    percentile: Callable[[list[float], float], float],
    n: int = 5,
) -> None:
    """A sandbox killed outside the operator: when status drops it, when a new one is Ready.
    Each round kills another instance: a slot whose sandboxes keep vanishing backs off (10 s,
    20 s, ...), which is the crash-loop policy, not the reaction time measured here."""
    name = "victim"
    await bench.create(deployment_manifest(name, n))
    await bench.tracker.until([name], ready_with(n), 0, timeout=60)
    e2b = bench.stack.e2b
    noticed, replaced = [], []
    for index in range(n):
        obj = bench.tracker.latest(name)
        victim = _sandbox_of(obj, index)
        t0 = time.perf_counter()
        await AsyncSandbox.kill(victim, api_key=e2b.api_key, api_url=e2b.url, sandbox_url=e2b.url)
        gone = await bench.tracker.until(
            [name], lambda o, v=victim: v not in _sandbox_ids(o), t0, timeout=60
        )
        back = await bench.tracker.until(
            [name],
            lambda o, v=victim: ready_with(n)(o) and v not in _sandbox_ids(o),
            t0,
            timeout=60,
        )
        noticed.append(gone[name] - t0)
        replaced.append(back[name] - t0)
    a, b = percentile(noticed, 0.5), percentile(replaced, 0.5)
    bench.results.add(
        "killed sandbox: noticed (gone from status)", f"p50 {a:.2f} s (n={n})", "<= 2 s", a <= 2
    )
    bench.results.add(
        "killed sandbox: replacement Ready", f"p50 {b:.2f} s (n={n})", "<= 3 s", b <= 3
    )
    await bench.delete(name)
    await bench.no_sandboxes(timeout=60)


async def sdk_straight(bench: BenchLike, template: str, count: int, *, ready: bool) -> float:
    """The physical limit: `count` sandboxes created straight through the SDK at the
    operator's create concurrency, against the same e2b-local; seconds until all exist, or
    with `ready` until each also did what the operator does before calling one Ready: its
    instance config written, its main script started, its health check run once."""
    e2b = bench.stack.e2b
    kw = {"api_key": e2b.api_key, "api_url": e2b.url, "sandbox_url": e2b.url}
    gate = asyncio.Semaphore(CREATE_CONCURRENCY)

    async def one() -> AsyncSandbox:
        async with gate:
            sbx = await AsyncSandbox.create(template, metadata={"k8s-namespace": "sdk"}, **kw)
        if ready:
            await sbx.files.write(str(INSTANCE_CONFIG), "{}")
            await sbx.commands.run(f"python3 {APP_DIR}/main.py > {MAIN_LOG} 2>&1", background=True)
            await sbx.commands.run(HEALTH_CHECK)
        return sbx

    t0 = time.perf_counter()
    made = await asyncio.gather(*(one() for _ in range(count)))
    took = time.perf_counter() - t0
    await asyncio.gather(*(s.kill() for s in made))
    return took


async def ratios(
    bench: BenchLike, label: str, operator_seconds: float, template: str, count: int, goal: float
) -> None:
    """Print the operator's time next to the physical limit measured now, as ratios: against
    bare creates, and against the same work (create, config, main script, one check)."""
    for ready, what in ((False, "SDK creates"), (True, "SDK create+config+main+check")):
        limit = await sdk_straight(bench, template, count, ready=ready)
        r = limit / operator_seconds if operator_seconds else 0.0
        bench.results.add(
            f"{label} vs {what} (same run)",
            f"{operator_seconds:.2f} s vs {limit:.2f} s: ratio {r:.2f}",
            f">= {goal}",
            r >= goal,
        )
