"""Which instance indices (slots) a deployment wants. No I/O.

Slots are the first `replicas` indices not in `retiredInstances`, so removing one instance
(retire its index, replicas - 1) leaves the others' indices, configs and sandboxes alone.
"""

from __future__ import annotations

from itertools import count, islice

from ..api import E2BDeploymentSpec


def slot_indices(spec: E2BDeploymentSpec) -> list[int]:
    """The wanted instance indices, ascending."""
    retired = set(spec.retired_instances)
    return list(islice((i for i in count() if i not in retired), spec.replicas))


def shard_step(spec: E2BDeploymentSpec) -> int:
    """How many ways a shardBy list is dealt: one past the highest index wanted or retired,
    so retiring instances (and their items) leaves the other instances' items in place."""
    return max([*slot_indices(spec), *spec.retired_instances], default=0) + 1
