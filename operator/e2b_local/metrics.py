"""Sandbox metrics as `get_metrics` reads them: CPU, memory and disk, sampled every second.

CPU and memory come from the sandbox's cgroups (cpuacct, memory), disk from its writable
layer (bytes it wrote) against the filesystem that holds it (e2b-local has no disk limits).
"""

from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .isolation import Cgroups

SAMPLE_S = 1.0
KEEP = 3600  # one hour of samples


@dataclass
class Sample:
    at: datetime
    cpu_count: int
    cpu_used_pct: float
    mem_used: int
    mem_total: int
    mem_cache: int
    disk_used: int
    disk_total: int

    def json(self) -> dict[str, Any]:
        return {
            "timestamp": self.at.isoformat().replace("+00:00", "Z"),
            "timestampUnix": int(self.at.timestamp()),
            "cpuCount": self.cpu_count,
            "cpuUsedPct": self.cpu_used_pct,
            "memUsed": self.mem_used,
            "memTotal": self.mem_total,
            "memCache": self.mem_cache,
            "diskUsed": self.disk_used,
            "diskTotal": self.disk_total,
        }


def _tree_size(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except OSError:
                continue
    return total


class Metrics:
    """The samples of one sandbox."""

    def __init__(self, cgroups: Cgroups, upper: Path, cpu_count: int) -> None:
        self.cgroups = cgroups
        self.upper = upper
        self.cpu_count = cpu_count
        self.samples: deque[Sample] = deque(maxlen=KEEP)
        self._last: tuple[float, int] | None = None

    def sample(self) -> None:
        """Take one sample (blocking: run it in a thread); nothing once the sandbox is gone."""
        try:
            cpu_ns, mem_used, cache, limit = self.cgroups.usage()
            fs = os.statvfs(self.upper)
            disk_used = _tree_size(self.upper)
        except OSError:
            return
        t = time.monotonic()
        pct = 0.0
        if self._last is not None and t > self._last[0]:
            busy = (cpu_ns - self._last[1]) / 1e9 / (t - self._last[0])
            pct = round(min(100.0, max(0.0, busy / self.cpu_count * 100)), 2)
        self._last = (t, cpu_ns)
        self.samples.append(
            Sample(
                at=datetime.now(UTC),
                cpu_count=self.cpu_count,
                cpu_used_pct=pct,
                mem_used=mem_used,
                mem_total=limit,
                mem_cache=cache,
                disk_used=disk_used,
                disk_total=fs.f_blocks * fs.f_frsize,
            )
        )

    def between(self, start: int | None, end: int | None) -> list[dict[str, Any]]:
        """Samples within [start, end] (Unix seconds, both optional), oldest first."""
        return [
            s.json()
            for s in list(self.samples)
            if (start is None or s.at.timestamp() >= start)
            and (end is None or s.at.timestamp() <= end + 1)
        ]
