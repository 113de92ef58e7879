"""Status writes that happen only when something changed."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import kopf

from ..api import K8sModel, plain
from .kube import Kube

log = logging.getLogger(__name__)

ECHO_SECONDS = 10.0
"""How long our own write may take to come back through the watch."""


@dataclass
class StatusWriter:
    """Writes one object's status; skips writes that change nothing, including a repeat of
    its own last write while the watch has not delivered it yet."""

    kube: Kube
    plural: str
    namespace: str
    name: str
    last: dict[str, Any] = field(default_factory=dict)
    last_at: float = 0.0
    writes: int = 0

    def known(self, body: kopf.Body) -> dict[str, Any]:
        """The freshest status: our last write while the watch has not delivered it, else
        the object's (then the copy is dropped: a status per object is kept once, by kopf)."""
        current = plain(body.get("status") or {})
        if self.last and _same(current, self.last):
            self.last = {}
        return self.last or current

    async def write(self, body: kopf.Body, status: K8sModel) -> bool:
        new = status.wire()
        old = plain(body.get("status") or {})
        if _same(old, new):
            return False
        if new == self.last and time.monotonic() - self.last_at < ECHO_SECONDS:
            return False
        patch: dict[str, Any] = dict(new)
        for key in old:
            patch.setdefault(key, None)
        await self.kube.patch_status(self.plural, self.namespace, self.name, patch)
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        log.info("[%s/%s] status written: %s", self.namespace, self.name, ", ".join(changed))
        self.last, self.last_at = new, time.monotonic()
        self.writes += 1
        return True


def _same(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return {k: v for k, v in old.items() if v is not None} == new
