"""PTY, directory watching and metrics through the unmodified SDK."""

from __future__ import annotations

import time

from e2b import Sandbox

from .conftest import LocalServer


def _wait_for_samples(sbx: Sandbox, n: int) -> list:
    deadline = time.monotonic() + 30
    while len(samples := sbx.get_metrics()) < n and time.monotonic() < deadline:
        time.sleep(0.2)
    return samples


def test_metrics_move_under_load(local: LocalServer) -> None:
    sbx = Sandbox.create(**local.kw)
    try:
        idle = _wait_for_samples(sbx, 2)[-1]
        assert idle.cpu_count == 2 and idle.mem_total == 1024 << 20
        assert idle.cpu_used_pct < 50 and 0 <= idle.disk_used < idle.disk_total
        # Busy CPU, 200 MiB of resident memory and 50 MiB written to the sandbox's disk.
        sbx.commands.run(
            "python3 -c 'b = bytearray(200 << 20); import time; t = time.time()\n"
            "while time.time() - t < 30: pass' &"
            " head -c 50M /dev/urandom > /tmp/blob; sleep 0.1",
        )
        n = len(sbx.get_metrics())
        loaded = _wait_for_samples(sbx, n + 2)[-1]
        assert loaded.cpu_used_pct > 10 and loaded.cpu_used_pct > idle.cpu_used_pct + 5
        assert loaded.mem_used > idle.mem_used + (150 << 20)
        assert loaded.disk_used > idle.disk_used + (45 << 20)
        assert loaded.timestamp > idle.timestamp
        start = loaded.timestamp
        assert all(
            m.timestamp >= start.replace(microsecond=0) for m in sbx.get_metrics(start=start)
        )
    finally:
        sbx.kill()
