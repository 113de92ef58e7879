"""A fair queue: waiters grouped by key (a deployment), served in turn (pure).

Round-robin over the keys that have waiters, first come first served within a key, so a
deployment with a thousand creates waiting and one with four take turns: neither starves.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Turns(Generic[T]):
    def __init__(self) -> None:
        self._queues: OrderedDict[str, deque[T]] = OrderedDict()
        """Keys in the order of their next turn; a key is removed once it has no waiters."""
        self._size = 0
        """Waiters in all queues (read by the metrics thread: one int, never mid-update)."""

    def push(self, key: str, item: T) -> None:
        """Queue ``item`` behind ``key``'s earlier waiters (a new key's turn comes last)."""
        self._queues.setdefault(key, deque()).append(item)
        self._size += 1

    def pop(self) -> tuple[str, T] | None:
        """The first waiter of the key whose turn it is; that key then goes last."""
        if not self._queues:
            return None
        key, queue = next(iter(self._queues.items()))
        item = queue.popleft()
        self._size -= 1
        del self._queues[key]
        if queue:
            self._queues[key] = queue
        return key, item

    def discard(self, key: str, item: T) -> None:
        """Remove a waiter that gave up (its key keeps its place in the order)."""
        queue = self._queues.get(key)
        if queue is None or item not in queue:
            return
        queue.remove(item)
        self._size -= 1
        if not queue:
            del self._queues[key]

    def count(self, key: str) -> int:
        return len(self._queues.get(key, ()))

    def __iter__(self) -> Iterator[str]:
        """The keys with waiters, in the order of their turns."""
        return iter(list(self._queues))

    def __len__(self) -> int:
        return self._size
