"""Benchmark e2b-local with the unmodified async SDKs: create, run, files, kill, 50 concurrent,
a sandbox port through get_host, the code interpreter's run_code."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import httpx
from e2b import AsyncSandbox, AsyncTemplate
from e2b_code_interpreter import AsyncSandbox as CodeSandbox

N = 30
KEY = "e2b_bench0123456789"


def pct(xs: list[float]) -> str:
    xs = sorted(xs)
    p95 = xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]
    return f"p50 {statistics.median(xs) * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms   (n={len(xs)})"


async def bench(kw: dict[str, object]) -> None:
    t = AsyncTemplate().from_debian_image().run_cmd("echo built > /opt/bench.txt", user="root")
    await AsyncTemplate.build(t, "bench-tpl", **kw)
    create, run, files, kill = [], [], [], []
    blob = os.urandom(1 << 20)
    for _ in range(N):
        t0 = time.perf_counter()
        s = await AsyncSandbox.create("bench-tpl", **kw)
        create.append(time.perf_counter() - t0)
        for _ in range(3):
            t0 = time.perf_counter()
            await s.commands.run("true")
            run.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        await s.files.write("/tmp/blob", blob)
        assert await s.files.read("/tmp/blob", format="bytes") == blob
        files.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        await s.kill()
        kill.append(time.perf_counter() - t0)
    print(f"create (built template)   {pct(create)}")
    print(
        "  (each sandbox a crun container with a user namespace, seccomp and its own network "
        "namespace; before crun, unshare-only isolation measured p50 34 ms at 8f3933c; crun's "
        "own start of the same container: make bench-runtimes)"
    )
    print(f'commands.run("true")      {pct(run)}')
    print(f"files 1 MiB write+read    {pct(files)}")
    print(f"kill                      {pct(kill)}")
    t0 = time.perf_counter()
    sbxs = await asyncio.gather(*(AsyncSandbox.create("bench-tpl", **kw) for _ in range(50)))
    wall = time.perf_counter() - t0
    outs = await asyncio.gather(*(s.commands.run("cat /opt/bench.txt") for s in sbxs))
    assert all(o.stdout == "built\n" for o in outs)
    print(f"50 sandboxes running at once: {wall:.2f} s wall (all answered a command)")
    await asyncio.gather(*(s.kill() for s in sbxs))
    await bench_ports_and_code(kw)


async def bench_ports_and_code(kw: dict[str, object]) -> None:
    s = await AsyncSandbox.create("bench-tpl", allow_internet_access=False, **kw)
    await s.commands.run("cd /tmp && python3 -m http.server 8000", background=True)
    await s.commands.run("until ss -Htln | grep -q :8000; do sleep 0.05; done", timeout=10)
    port = []
    async with httpx.AsyncClient(base_url=str(kw["api_url"])) as client:
        for _ in range(N * 3):
            t0 = time.perf_counter()
            r = await client.get("/", headers={"Host": s.get_host(8000)})
            port.append(time.perf_counter() - t0)
            assert r.status_code == 200
    await s.kill()
    print(f"GET a sandbox port        {pct(port)}   (Host <port>-<id>.<domain>, internet off)")
    t0 = time.perf_counter()
    ci = await CodeSandbox.create(request_timeout=900, **kw)
    first = time.perf_counter() - t0
    code = []
    for _ in range(N):
        t0 = time.perf_counter()
        assert (await ci.run_code("1+1")).text == "2"
        code.append(time.perf_counter() - t0)
    await ci.kill()
    print(f'run_code("1+1")           {pct(code)}')
    print(f"  (first code-interpreter create {first:.1f} s: builds or restores its cached layer)")


def main() -> None:
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        port = so.getsockname()[1]
    state = tempfile.mkdtemp(prefix="e2b-local-bench-")
    exe = os.path.join(os.path.dirname(sys.executable), "e2b-local")
    proc = subprocess.Popen(
        [exe, "serve", "--port", str(port), "--state-dir", state],
        env={**os.environ, "E2B_LOCAL_API_KEY": KEY},
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        asyncio.run(bench({"api_url": url, "sandbox_url": url, "api_key": KEY}))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        subprocess.run(["rm", "-rf", state], check=False)


if __name__ == "__main__":
    main()
