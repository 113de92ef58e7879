"""`kubectl e2b logs [-f]`: an instance's main script output, through the real stack."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading

import pytest
from e2b import Sandbox

from e2b_operator.controlplane.cluster import LocalCluster
from e2b_operator.localstack import E2BLocal
from support import apply, deployment, get, template, wait_condition, wait_for

from .test_plugin import PLUGIN, one_line_error
from .test_plugin import e2b as plugin

pytestmark = pytest.mark.cluster

TICKER = """
import itertools, json, sys, time
index = json.loads(sys.argv[1]).get("instanceIndex") if len(sys.argv) > 1 else None
for i in itertools.count():
    print(f"instance {index} tick {i}", flush=True)
    time.sleep(0.5)
"""


def ticks(lines: list[str], instance: int) -> list[int]:
    prefix = f"instance {instance} tick "
    return [int(line.removeprefix(prefix)) for line in lines if line.startswith(prefix)]


def whole(printed: list[int], stderr: str) -> bool:
    """Consecutive ticks, none twice; from the first, unless more than a status write carries
    (4 KiB: a slow test host) went by, which is then reported as a gap."""
    start = printed[0] if printed else 0
    return printed == list(range(start, start + len(printed))) and (
        start == 0 or "went by unseen" in stderr
    )


class Follower:
    """`kubectl e2b logs -f` as a process; its stdout and stderr lines read as they come."""

    def __init__(self, *args: str) -> None:
        # Started with SIGINT ignored, as a shell starts a background job (so does CI): Ctrl-C
        # must stop it all the same.
        self.proc = subprocess.Popen(
            [PLUGIN, "logs", "-f", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.errors: list[str] = []
        self.readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.lines.put)),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.errors.append)),
        ]
        for reader in self.readers:
            reader.start()
        self.seen: list[str] = []

    @staticmethod
    def _read(stream, put) -> None:
        for line in stream:
            put(line.rstrip("\n"))

    def until(self, check, timeout: float = 120) -> list[str]:
        def more() -> bool:
            while not self.lines.empty():
                self.seen.append(self.lines.get())
            return check(self.seen)

        wait_for(more, timeout, "log lines", lambda: "\n".join(self.seen[-5:] + self.errors))
        return self.seen

    def stderr(self) -> str:
        return "\n".join(self.errors)

    def wait(self, timeout: float) -> int:
        code = self.proc.wait(timeout=timeout)
        for reader in self.readers:
            reader.join(timeout=10)
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait(60)


def _executions(kube: LocalCluster, namespace: str) -> list[str]:
    return kube.kubectl("-n", namespace, "get", "e2bx", "-o", "name").stdout.split()


def _readers(e2b_local: E2BLocal, sandbox_id: str) -> int:
    """tail processes in the sandbox (the log readers)."""
    sbx = Sandbox.connect(
        sandbox_id, api_key=e2b_local.api_key, api_url=e2b_local.url, sandbox_url=e2b_local.url
    )
    return sum("tail" in " ".join([p.cmd, *p.args]) for p in sbx.commands.list())


def _sandbox(kube: LocalCluster, namespace: str, index: int) -> str:
    entries = get(kube, namespace, "e2bd", "web")["status"]["sandboxes"]
    return next(s["sandboxID"] for s in entries if s["index"] == index)


def test_logs_prints_follows_and_ends(
    kube: LocalCluster, namespace: str, operator, e2b: E2BLocal
) -> None:
    ns = ("-n", namespace)
    apply(kube, namespace, template("ticker", script=TICKER), deployment("web", "ticker", 2))
    wait_condition(kube, namespace, "e2bd", "web", "Ready", timeout=240)
    # Without -f: the log so far, from its first line, then exit 0.
    wait_for(lambda: len(ticks(plugin("logs", "web", *ns).stdout.splitlines(), 0)) >= 3, 60)
    out = plugin("logs", "web", *ns)
    assert out.returncode == 0, out.stderr
    printed = ticks(out.stdout.splitlines(), 0)
    assert whole(printed, out.stderr) and len(printed) >= 3, out.stdout + out.stderr
    other = plugin("logs", "web", "--instance", "1", *ns)
    assert other.returncode == 0 and not ticks(other.stdout.splitlines(), 0)
    assert whole(ticks(other.stdout.splitlines(), 1), other.stderr), other.stdout + other.stderr
    one_line_error(plugin("logs", "web", "--instance", "7", *ns), "instance 7", "0, 1")
    one_line_error(plugin("logs", "nope", *ns), "'nope' not found")
    wait_for(lambda: not _executions(kube, namespace), 60, "the reads' executions deleted")

    # -f: the whole log, then lines printed after it started, until Ctrl-C.
    follower = Follower("web", *ns)
    try:
        follower.until(lambda lines: ticks(lines, 0))
        # Read after the follow printed the log it found: later ticks were written since.
        last = ticks(plugin("logs", "web", *ns).stdout.splitlines(), 0)[-1]
        seen = follower.until(lambda lines: any(t > last for t in ticks(lines, 0)))
        wait_for(lambda: whole(ticks(seen, 0), follower.stderr()), 10, "none lost, none twice")
        sandbox_id = _sandbox(kube, namespace, 0)
        assert _readers(e2b, sandbox_id) == 1
        follower.proc.send_signal(signal.SIGINT)
        # On the way out it deletes its execution: a busy operator may take a while.
        assert follower.wait(180) == 0
    finally:
        follower.stop()
    wait_for(lambda: not _executions(kube, namespace), 60, "the follow's execution deleted")
    wait_for(lambda: _readers(e2b, sandbox_id) == 0, 60, "the reader gone from the sandbox")

    # -f ends by itself when the sandbox goes away.
    follower = Follower("web", "--instance", "1", *ns)
    try:
        follower.until(lambda lines: len(ticks(lines, 1)) >= 2)
        victim = _sandbox(kube, namespace, 1)
        Sandbox.kill(victim, api_key=e2b.api_key, api_url=e2b.url, sandbox_url=e2b.url)
        assert follower.wait(120) == 0
        assert "log ended" in follower.stderr()
    finally:
        follower.stop()
