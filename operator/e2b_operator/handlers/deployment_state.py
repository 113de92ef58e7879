"""What one deployment's loop keeps between passes: its memory and its observation caches."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from ..reconcile.deployment import Memory
from ..reconcile.expectations import Expectations
from ..reconcile.health import Health
from .kube import KubeRetry
from .status import StatusWriter
from .wakeups import Waker


@dataclass
class LoopState:
    """Lost on restart by design: sandboxes are listed again, health is read from status."""

    waker: Waker = field(default_factory=Waker)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    memory: Memory = field(default_factory=Memory)
    """The reducer's memory (reconcile.deployment.decide returns the next one)."""
    expectations: Expectations = field(default_factory=Expectations)
    """Creates and deletes the listing may not show yet."""
    health: dict[str, Health] = field(default_factory=dict)
    """Each sandbox's health-check tally (observed by running the hook)."""
    nonces: dict[int, str] = field(default_factory=dict)
    """Per slot: the idempotency nonce of a create that may be retried."""
    creating: set[int] = field(default_factory=set)
    """Slots whose create is in flight."""
    setting_up: set[str] = field(default_factory=set)
    """Sandboxes made by a create in flight, still being given their config, main script and
    first check: passes leave them to it (their slot counts as creating)."""
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    """The creates in flight."""
    abandon: dict[int, tuple[str, asyncio.Event]] = field(default_factory=dict)
    """Per slot with a create in flight: the hash it creates, and the event that gives it up
    while it still waits for its turn (the slot is no longer wanted, or the deployment goes)."""
    kube_retry: KubeRetry = field(default_factory=KubeRetry)
    """Passes in a row that the apiserver could not answer."""
    recovered: bool = False
    """E2B answered again after an outage: the next pass forgets the backoff."""
    generation: int | None = None
    """The generation the loop last saw (watch events of other changes do not wake it)."""
    seeded: bool = False
    writer: StatusWriter | None = None
