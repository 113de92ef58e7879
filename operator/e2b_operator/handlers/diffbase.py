"""kopf's diff-base kept in memory, not in an annotation on each object.

kopf compares an object with the essence (spec, labels, annotations) it last handled to tell a
spec change from a status write. Its default storage is an annotation: one more PATCH of every
new object and of every spec change, each a watch event for every watcher, kopf included. This
operator has no create, update or resume handlers, so the essence only spares kopf the handler
bookkeeping of status-only events; an essence it lacks (after a restart, or evicted) makes the
next event a creation with no handler, which writes nothing. So a bounded map keyed by uid
holds them.
"""

from __future__ import annotations

from collections import OrderedDict

import kopf

SIZE = 4096
"""Essences kept (a few KB each); the least recently seen object's goes first."""


class MemoryDiffBase(kopf.DiffBaseStorage):
    """The last-handled essence of each object, by uid, in this process only."""

    def __init__(self, size: int = SIZE) -> None:
        super().__init__()
        self.size = size
        self._essences: OrderedDict[str, kopf.BodyEssence] = OrderedDict()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        uid = body.metadata.uid or ""
        essence = self._essences.get(uid)
        if essence is not None:
            self._essences.move_to_end(uid)
        return essence

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        uid = body.metadata.uid or ""
        self._essences[uid] = essence
        self._essences.move_to_end(uid)
        while len(self._essences) > self.size:
            self._essences.popitem(last=False)

    def __len__(self) -> int:
        return len(self._essences)
