"""The in-memory diff-base: what kopf stored comes back for the same object, bounded."""

from __future__ import annotations

import kopf

from e2b_operator.handlers.diffbase import MemoryDiffBase


def body(uid: str) -> kopf.Body:
    return kopf.Body({"metadata": {"uid": uid, "name": uid}, "spec": {"replicas": 1}})


def essence(replicas: int) -> kopf.BodyEssence:
    return kopf.BodyEssence({"spec": {"replicas": replicas}})


def test_an_object_gets_back_what_was_stored_for_it_and_nothing_is_patched() -> None:
    storage = MemoryDiffBase()
    patch = kopf.Patch()
    assert storage.fetch(body=body("a")) is None
    storage.store(body=body("a"), patch=patch, essence=essence(2))
    assert storage.fetch(body=body("a")) == essence(2)
    assert storage.fetch(body=body("b")) is None
    assert not patch


def test_the_least_recently_seen_object_goes_first() -> None:
    storage = MemoryDiffBase(size=2)
    for uid in "ab":
        storage.store(body=body(uid), patch=kopf.Patch(), essence=essence(1))
    storage.fetch(body=body("a"))  # b is now the least recently seen
    storage.store(body=body("c"), patch=kopf.Patch(), essence=essence(1))
    assert len(storage) == 2
    assert storage.fetch(body=body("b")) is None
    assert storage.fetch(body=body("a")) == essence(1)
