"""One listing of the operator's sandboxes per period, shared by every deployment loop.

Like a Kubernetes informer: a single paged listing (filtered by the metadata the operator
sets) replaces one listing per deployment per pass; each loop reads its deployment's part
of the latest snapshot, and the loops whose sandboxes changed (vanished, appeared, paused,
resumed) are woken at once, so a lost sandbox is noticed within a period whatever the
health-check interval. E2B calls at idle stay one listing per period however many
deployments there are. Failures back off (up to max_period) and are handed to the loops,
which report them; the first listing that works again wakes every loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable

from ..reconcile.backoff import backoff
from ..reconcile.observed import MANAGED_BY, META_DEPLOYMENT_UID, META_MANAGED_BY, ObservedSandbox
from ..sandboxes.backend import SandboxBackend
from ..sandboxes.errors import BackendError

log = logging.getLogger(__name__)

Fingerprint = frozenset[tuple[str, str]]


class SandboxLister:
    """The latest listing of every sandbox this operator manages, grouped by deployment."""

    def __init__(
        self,
        backend: SandboxBackend,
        *,
        period: float,
        max_period: float,
        changed: Callable[[str], None],
        recovered: Callable[[], None] = lambda: None,
    ) -> None:
        self.backend = backend
        self.period = period
        self.max_period = max_period
        self.changed = changed
        self.recovered = recovered
        self.listings = 0
        self.failures = 0
        self.listed_at: float | None = None
        """time.monotonic() when the latest successful listing was asked for."""
        self.error: BackendError | None = None
        self._all: list[ObservedSandbox] = []
        self._by_uid: dict[str, list[ObservedSandbox]] = {}
        self._fingerprints: dict[str, Fingerprint] = {}
        self._listed = asyncio.Event()
        self._poked = asyncio.Event()
        self._waiting: set[str] = set()

    @classmethod
    def failing(cls, backend: SandboxBackend, error: BackendError) -> SandboxLister:
        """A listing that never lists: every read raises ``error`` (for an object whose
        credentials cannot be used, so it reports that instead of acting)."""
        lister = cls(backend, period=0.0, max_period=0.0, changed=lambda _: None)
        lister.error = error
        lister._listed.set()
        return lister

    async def run(self) -> None:
        """List forever (until cancelled)."""
        while True:
            try:
                await self.refresh()
                delay = self.period
            except BackendError as exc:
                delay = min(self.max_period, max(self.period, backoff(self.failures)))
                log.warning("listing sandboxes failed (%s), next try in %.1fs", exc.message, delay)
            except Exception:  # a bug here must not stop every deployment from seeing changes
                log.exception("listing sandboxes failed unexpectedly")
                delay = self.max_period
            self._poked.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poked.wait(), delay)

    async def refresh(self) -> None:
        """One listing now; wakes the deployments whose sandboxes changed."""
        started = time.monotonic()
        # Who waits for a listing asked for after their creates, not one already under way.
        waiting, self._waiting = self._waiting, set()
        try:
            listed = await self.backend.list({META_MANAGED_BY: MANAGED_BY})
        except BackendError as exc:
            self._waiting |= waiting
            self.failures += 1
            self.error = exc
            self._listed.set()
            raise
        self.listings += 1
        self.failures = 0
        self.listed_at = started
        log.debug("listed %d sandboxes in %.3fs", len(listed), time.monotonic() - started)
        failed_before, self.error = self.error is not None, None
        by_uid: dict[str, list[ObservedSandbox]] = defaultdict(list)
        for s in listed:
            uid = s.metadata.get(META_DEPLOYMENT_UID)
            if uid:
                by_uid[uid].append(s)
        prints: dict[str, Fingerprint] = {
            uid: frozenset((s.sandbox_id, str(s.state)) for s in ss) for uid, ss in by_uid.items()
        }
        moved = {
            uid
            for uid in set(prints) | set(self._fingerprints)
            if prints.get(uid) != self._fingerprints.get(uid)
        }
        self._all, self._by_uid, self._fingerprints = listed, dict(by_uid), prints
        self._listed.set()
        if failed_before:
            log.info("listing sandboxes works again: waking every deployment")
            self.recovered()
            return
        for uid in moved | waiting:
            self.changed(uid)

    def wake_after_next(self, deployment_uid: str) -> None:
        """Wake this deployment after the next listing asked for from now on, changed or not
        (it has creates that no listing confirmed yet: a sandbox lost before any listing saw
        it changes nothing in the listing, but its absence from a newer one is news)."""
        self._waiting.add(deployment_uid)

    def poke(self) -> None:
        """List again now (after E2B came back, or to see a change sooner)."""
        self._poked.set()

    async def sandboxes(self, deployment_uid: str) -> list[ObservedSandbox]:
        """The deployment's sandboxes in the latest listing; the listing's error if it failed."""
        await self._listed.wait()
        if self.error is not None:
            raise self.error
        return list(self._by_uid.get(deployment_uid, ()))

    async def everything(self) -> list[ObservedSandbox]:
        """Every managed sandbox in the latest listing."""
        await self._listed.wait()
        if self.error is not None:
            raise self.error
        return list(self._all)
