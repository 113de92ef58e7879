"""The E2BDeployment loop (observe -> decide -> act -> write) over a fake backend: no I/O."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from e2b_operator.api import E2BDeploymentStatus, E2BTemplateSpec
from e2b_operator.handlers import deployments, health
from e2b_operator.handlers.context import Services, TemplateEntry
from e2b_operator.handlers.kube import SecretMissing
from e2b_operator.handlers.lister import SandboxLister
from e2b_operator.handlers.settings import Settings
from e2b_operator.handlers.status import StatusWriter
from e2b_operator.reconcile.deployment import TemplateView
from e2b_operator.reconcile.observed import CommandOutcome, ObservedSandbox
from e2b_operator.sandboxes.errors import BackendError
from e2b_operator.sandboxes.pacer import Pacer
from e2b_operator.sandboxes.ratelimit import Endpoint

UID = "uid-1"


@dataclass
class FakeBackend:
    """Sandboxes in a dict; the health hook passes where `healthy` says so."""

    sandboxes: dict[str, ObservedSandbox] = field(default_factory=dict)
    healthy: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)
    fail_creates: int = 0
    limit_creates: int = 0
    """Creates answered 429 (rate limited) before they succeed."""
    ids: Any = field(default_factory=lambda: itertools.count())
    pacer: Pacer = field(default_factory=Pacer)

    async def list(self, metadata: dict[str, str]) -> list[ObservedSandbox]:
        self.calls.append("list")
        return [s for s in self.sandboxes.values() if metadata.items() <= s.metadata.items()]

    async def create(
        self,
        template: str,
        *,
        metadata: dict[str, str],
        turn: str = "",
        abandon: asyncio.Event | None = None,
        **_: Any,
    ) -> str:
        async with self.pacer.turn(turn, abandon):
            return self._create(metadata)

    def _create(self, metadata: dict[str, str]) -> str:
        self.calls.append("create")
        if self.limit_creates:
            self.limit_creates -= 1
            raise BackendError("RateLimited", "E2B answered 429", retry_after=0.01)
        if self.fail_creates:
            self.fail_creates -= 1
            raise BackendError("ServiceUnavailable", "E2B answered 503")
        sid = f"s{next(self.ids)}"
        now = datetime.now(UTC)
        self.sandboxes[sid] = ObservedSandbox(sid, "running", dict(metadata), started_at=now)
        self.healthy.add(sid)
        return sid

    async def write_files(self, sandbox_id: str, files: dict[str, str]) -> None:
        self.calls.append("write_files")

    async def start(self, sandbox_id: str, command: str, **_: Any) -> int:
        self.calls.append("start")
        return 1

    async def run(self, sandbox_id: str, command: str, **_: Any) -> CommandOutcome:
        self.calls.append("run")
        return CommandOutcome(0 if sandbox_id in self.healthy else 1, stderr="down")

    async def kill(self, sandbox_id: str) -> bool:
        self.calls.append("kill")
        return self.sandboxes.pop(sandbox_id, None) is not None

    async def set_timeout(self, sandbox_id: str, timeout: int) -> None:
        self.calls.append("set_timeout")


@dataclass
class FakeKube:
    statuses: list[dict[str, Any]] = field(default_factory=list)

    async def patch_status(self, plural: str, namespace: str, name: str, status: Any) -> None:
        self.statuses.append(status)

    async def secret_value(self, namespace: str, name: str, key: str) -> str:
        raise SecretMissing(f"Secret {namespace}/{name} does not exist")


def template_entry() -> TemplateEntry:
    tspec = E2BTemplateSpec.from_wire(
        {
            "type": "pythonBase",
            "files": {"mainScript": "print(1)"},
            "hooks": {"healthCheck": "test -f /tmp/up"},
        }
    )
    view = TemplateView("app", ready=True, template_id="tpl", spec_hash="h")
    return TemplateEntry(view, tspec)


class Loop:
    """One deployment's loop state driven pass by pass."""

    def __init__(self, replicas: int = 2, **spec: Any) -> None:
        self.backend, self.kube, self.events = FakeBackend(), FakeKube(), []
        self.services = Services(
            kube=self.kube,  # type: ignore[arg-type]
            backend=self.backend,  # type: ignore[arg-type]
            builds=None,  # type: ignore[arg-type]
            settings=Settings(),
            templates={("ns", "app"): [template_entry()]},
            post=lambda _body, event: self.events.append(event),
        )
        self.services.lister = SandboxLister(
            self.backend,  # type: ignore[arg-type]
            period=1,
            max_period=1,
            changed=self.services.poke_deployment,
        )
        self.body = kopf.Body(
            {
                "apiVersion": "e2b.dev/v1alpha1",
                "kind": "E2BDeployment",
                "metadata": {"name": "web", "namespace": "ns", "uid": UID, "generation": 1},
                "spec": {"templateRef": {"name": "app"}, "replicas": replicas, **spec},
            }
        )
        self.target = deployments.Target("ns", "web", UID)
        self.state = self.services.deployment_state(UID)
        self.state.writer = StatusWriter(self.kube, "e2bdeployments", "ns", "web")  # type: ignore[arg-type]

    async def step(self) -> float:
        wait = await self.step_without_waiting()
        await asyncio.gather(*self.state.tasks)  # the creates it started in the background
        return wait

    async def step_without_waiting(self) -> float:
        assert self.services.lister is not None
        await self.services.lister.refresh()
        return await deployments.reconcile(self.services, self.target, self.body, self.state)

    @property
    def status(self) -> dict[str, Any]:
        return self.state.writer.last if self.state.writer else {}


async def test_creates_checks_and_reports_ready_in_two_passes() -> None:
    loop = Loop(replicas=2)
    assert await loop.step() == 0.0  # acted: look again at once
    assert loop.backend.calls.count("create") == 2
    assert loop.backend.calls.count("run") == 2  # each new sandbox is checked right away
    assert [e.reason for e in loop.events] == ["Created", "Created"]
    wait = await loop.step()
    assert loop.status["readyReplicas"] == 2 and loop.status["phase"] == "Available"
    assert 29 < wait <= 30  # the next health check, one interval after the first
    lists = loop.backend.calls.count("list")
    assert lists == 2  # the shared listing only: one per refresh, none per deployment


async def test_a_finished_create_wakes_the_loop_and_one_status_says_ready() -> None:
    loop = Loop(replicas=1)
    await loop.step()
    assert len(loop.kube.statuses) == 1  # the first status, announcing the create
    assert loop.state.waker._event.is_set()  # its end wakes the loop at once
    await deployments.reconcile(loop.services, loop.target, loop.body, loop.state)
    assert len(loop.kube.statuses) == 2  # created and Ready in one write
    assert loop.status["readyReplicas"] == 1 and loop.status["phase"] == "Available"
    await loop.step()  # the listing that confirms it has nothing new to say
    assert len(loop.kube.statuses) == 2


async def test_a_create_ending_during_a_listing_waits_for_the_next_one() -> None:
    loop = Loop(replicas=1)
    assert loop.services.lister is not None
    lister, listing, listed = loop.services.lister, asyncio.Event(), asyncio.Event()
    list_all = loop.backend.list

    async def slow_list(metadata: dict[str, str]) -> list[ObservedSandbox]:
        found = await list_all(metadata)  # what E2B had when asked
        listing.set()
        await listed.wait()
        return found

    loop.backend.list = slow_list  # type: ignore[method-assign]
    listed.set()
    await lister.refresh()
    listed.clear()
    listing.clear()
    refresh = asyncio.create_task(lister.refresh())
    await listing.wait()  # asked for before the create below ends
    await deployments.reconcile(loop.services, loop.target, loop.body, loop.state)
    await asyncio.gather(*loop.state.tasks)
    loop.state.waker._event.clear()  # the loop took the create's own wake-up
    listed.set()
    await refresh
    assert not loop.state.waker._event.is_set()  # that listing cannot show the new sandbox
    await lister.refresh()
    assert loop.state.waker._event.is_set()


async def test_a_sandbox_listed_while_its_create_sets_it_up_is_left_to_that_create() -> None:
    loop = Loop(replicas=1)
    assert loop.services.lister is not None
    gate, write_files = asyncio.Event(), loop.backend.write_files

    async def slow_setup(sandbox_id: str, files: dict[str, str]) -> None:
        await gate.wait()
        await write_files(sandbox_id, files)

    loop.backend.write_files = slow_setup  # type: ignore[method-assign]
    await loop.step_without_waiting()
    while not loop.backend.sandboxes:
        await asyncio.sleep(0)
    await loop.services.lister.refresh()  # the new sandbox is listed before it is set up
    await deployments.reconcile(loop.services, loop.target, loop.body, loop.state)
    assert loop.backend.calls.count("run") == 0  # not checked before its main script runs
    assert len(loop.kube.statuses) == 1  # nothing new to say: its create is still on
    gate.set()
    await asyncio.gather(*loop.state.tasks)
    await loop.step()
    assert loop.backend.calls.count("run") == 1  # the create's own first check only
    assert len(loop.kube.statuses) == 2 and loop.status["phase"] == "Available"


async def test_a_vanished_sandbox_wakes_the_loop_and_is_replaced() -> None:
    loop = Loop(replicas=1)
    await loop.step()
    await loop.step()
    (sid,) = loop.backend.sandboxes
    del loop.backend.sandboxes[sid]  # killed outside the operator
    await loop.services.lister.refresh()  # type: ignore[union-attr]
    assert loop.state.waker._event.is_set()  # the listing noticed and woke the loop
    await loop.step()
    assert len(loop.backend.sandboxes) == 1 and sid not in loop.backend.sandboxes


async def test_a_sandbox_killed_before_any_listing_saw_it_is_replaced() -> None:
    loop = Loop(replicas=1)
    assert loop.services.lister is not None
    await loop.services.lister.refresh()
    await deployments.reconcile(loop.services, loop.target, loop.body, loop.state)
    await asyncio.gather(*loop.state.tasks)
    (sid,) = loop.backend.sandboxes
    del loop.backend.sandboxes[sid]  # gone before the lister ever listed it
    loop.state.waker._event.clear()
    await loop.services.lister.refresh()  # nothing changed in the listing, yet ...
    assert loop.state.waker._event.is_set()  # ... the loop waiting for its create is woken
    await loop.step()  # this listing started after the create returned, and lacks it
    assert len(loop.backend.sandboxes) == 1 and sid not in loop.backend.sandboxes


async def test_a_starting_sandbox_is_checked_fast_and_not_replaced() -> None:
    loop = Loop(replicas=1)
    loop.backend.healthy.clear()
    loop.backend.create = _unhealthy_create(loop.backend)  # type: ignore[method-assign]
    await loop.step()
    waits = [await loop.step() for _ in range(3)]
    assert all(w <= 1.0 for w in waits), waits  # startup probing, not the 30 s interval
    assert loop.backend.calls.count("kill") == 0
    assert loop.status["sandboxes"][0]["phase"] == "Starting"


async def test_failed_creates_back_off_then_ramp() -> None:
    loop = Loop(replicas=3)
    loop.backend.fail_creates = 3
    await loop.step()
    memory = loop.state.memory
    assert memory.ramp == 1 and memory.create_failures == 3 and memory.retry_creates_at
    assert [e.reason for e in loop.events] == ["ServiceUnavailable"] * 3
    wait = await loop.step()
    assert loop.backend.calls.count("create") == 3  # held back: no create storm
    assert 0 < wait <= 4.0  # back when creates may resume
    loop.state.memory = replace(memory, retry_creates_at=None)  # the backoff has passed
    await loop.step()
    assert loop.backend.calls.count("create") == 4  # then one at a time


async def test_a_missing_secret_stalls_without_touching_sandboxes() -> None:
    loop = Loop(
        replicas=1,
        env=[{"name": "K", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k"}}}],
    )
    wait = await loop.step()
    assert loop.backend.calls.count("create") == 0
    stalled = {c["type"]: c for c in loop.status["conditions"]}["Stalled"]
    assert stalled["status"] == "True" and stalled["reason"] == "SecretNotFound"
    assert wait == Settings().error_backoff_max_seconds
    assert [e.reason for e in loop.events] == ["SecretNotFound"]


async def test_rate_limited_creates_wait_their_turn_without_errors_or_backoff() -> None:
    loop = Loop(replicas=3)
    loop.backend.limit_creates = 2
    await loop.step()
    assert len(loop.backend.sandboxes) == 3  # the 429'd creates were tried again
    assert loop.backend.calls.count("create") == 5
    assert [e.reason for e in loop.events] == ["Created"] * 3  # no Warning per 429
    assert loop.state.memory.create_failures == 0 and loop.state.memory.ramp is None
    assert loop.backend.pacer.throttled_calls == 2
    assert loop.backend.pacer.buckets[Endpoint.CREATE].slowed  # and it slowed down


async def test_creates_waiting_for_their_turn_are_given_up_when_scaled_to_zero() -> None:
    loop = Loop(replicas=3)
    loop.backend.pacer.capacity.full(loop.backend.pacer.clock(), "cap of 0 reached")
    loop.backend.pacer.capacity.hold_until = float("inf")  # no room until told otherwise
    assert loop.services.lister is not None
    await loop.services.lister.refresh()
    await deployments.reconcile(loop.services, loop.target, loop.body, loop.state)
    await asyncio.sleep(0)
    throttle = loop.backend.pacer.throttle(UID)
    assert throttle is not None and throttle.reason == "CapacityExhausted"
    raw = dict(loop.body)
    raw["spec"] = {**raw["spec"], "replicas": 0}
    loop.body = kopf.Body({**raw, "metadata": {**raw["metadata"], "generation": 2}})
    await loop.step()  # the three waiting creates give up: nothing was sent
    assert loop.backend.calls.count("create") == 0 and not loop.state.creating
    assert loop.backend.pacer.throttle(UID) is None
    assert loop.status["replicas"] == 0


async def test_e2b_coming_back_cuts_every_backoff_short() -> None:
    loop = Loop(replicas=1)
    loop.backend.fail_creates = 1
    await loop.step()
    assert loop.state.memory.retry_creates_at is not None
    far = datetime.now(UTC) + timedelta(hours=1)  # a long backoff left to sit out
    loop.state.memory = replace(loop.state.memory, retry_creates_at=far, failures=12)
    loop.services.backend_recovered()  # a call succeeded somewhere after an outage
    assert loop.state.recovered and loop.state.waker._event.is_set()
    stopped = Stopped()
    runner = asyncio.create_task(deployments.run(loop.services, loop.body, stopped))  # type: ignore[arg-type]
    for _ in range(200):
        await asyncio.sleep(0.01)
        if loop.backend.sandboxes:
            break
    stopped.set()
    loop.state.waker.poke()
    await runner
    assert len(loop.backend.sandboxes) == 1  # created without sitting out the backoff
    assert not loop.state.recovered and loop.state.memory.create_failures == 0


class Stopped(asyncio.Event):
    """Like kopf's DaemonStopped: true once set."""

    def __bool__(self) -> bool:
        return self.is_set()


def _unhealthy_create(backend: FakeBackend) -> Any:
    create = FakeBackend.create

    async def wrapped(template: str, **kw: Any) -> str:
        sid = await create(backend, template, **kw)
        backend.healthy.discard(sid)
        return sid

    return wrapped


def test_after_a_restart_healthy_sandboxes_are_checked_over_an_interval_not_at_once() -> None:
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    entry = {"index": 0, "healthy": True, "phase": "Running"}
    status = E2BDeploymentStatus.from_wire(
        {
            "sandboxes": [
                *({**entry, "sandboxID": f"ok{i}"} for i in range(20)),
                {**entry, "sandboxID": "sick", "healthy": False, "phase": "Unhealthy"},
                {**entry, "sandboxID": "new", "healthy": False, "phase": "Starting"},
            ]
        }
    )
    tallies = health.from_status(status, now, 10)
    waits = {sid: h.wait(now, 10) for sid, h in tallies.items()}
    assert waits["sick"] <= 0 and waits["new"] <= 0  # in doubt: checked at once
    spread = [waits[f"ok{i}"] for i in range(20)]
    assert all(0 <= w <= 10 for w in spread) and max(spread) - min(spread) > 5
    assert all(tallies[f"ok{i}"].passed and tallies[f"ok{i}"].healthy for i in range(20))


async def test_creates_go_ahead_while_the_apiserver_cannot_take_the_status() -> None:
    loop = Loop(replicas=2)
    await loop.step()
    loop.body = kopf.Body({**loop.body, "spec": {**loop.body["spec"], "replicas": 3}})

    async def away(*_: Any) -> None:
        raise ApiException(status=503, reason="etcd unavailable")

    loop.kube.patch_status = away  # type: ignore[method-assign]
    assert loop.services.lister is not None
    await loop.services.lister.refresh()
    with pytest.raises(ApiException):
        await deployments.reconcile(loop.services, loop.target, loop.body, loop.state)
    await asyncio.gather(*loop.state.tasks)
    assert loop.backend.calls.count("create") == 3 and len(loop.backend.sandboxes) == 3
    # Scaled down meanwhile: the kill waits for the status that says Terminating.
    loop.body = kopf.Body({**loop.body, "spec": {**loop.body["spec"], "replicas": 1}})
    await loop.services.lister.refresh()
    with pytest.raises(ApiException):
        await deployments.reconcile(loop.services, loop.target, loop.body, loop.state)
    assert "kill" not in loop.backend.calls and len(loop.backend.sandboxes) == 3


async def test_stopping_gives_up_creates_in_flight_without_waiting_for_their_commands() -> None:
    loop = Loop(replicas=1)
    cleaned: list[str] = []

    async def create_checking_a_slow_sandbox() -> None:
        try:
            await asyncio.sleep(3600)  # its first health check
        except asyncio.CancelledError:
            try:
                await asyncio.sleep(3600)  # killing the check's command, which never answers
            finally:
                cleaned.append("gave up")
            raise

    task = asyncio.create_task(create_checking_a_slow_sandbox())
    loop.state.tasks.add(task)
    await asyncio.sleep(0)
    await asyncio.wait_for(deployments.stop(loop.services, wait=0.05), timeout=5)
    await asyncio.sleep(0)
    assert task.cancelled() and cleaned == ["gave up"]


async def test_a_create_that_ends_while_health_is_checked_is_not_made_twice() -> None:
    """A pass takes the sandboxes, checks the due ones, then decides: a create that ends
    entirely during those checks was in neither the sandboxes nor the creates in flight it
    saw, and its slot was created again (then the extra killed as a Duplicate)."""
    loop = Loop(replicas=1)
    await loop.step()
    await loop.step()
    (first,) = loop.backend.sandboxes
    gate = asyncio.Event()
    create, run = loop.backend.create, loop.backend.run

    async def held_create(*args: Any, **kwargs: Any) -> str:
        await gate.wait()
        return await create(*args, **kwargs)

    async def run_while_the_create_ends(sandbox_id: str, command: str, **kw: Any) -> CommandOutcome:
        if sandbox_id == first and not gate.is_set():
            gate.set()
            await asyncio.gather(*loop.state.tasks)  # the create ends: made, set up, checked
        return await run(sandbox_id, command, **kw)

    loop.backend.create = held_create  # type: ignore[method-assign]
    loop.backend.run = run_while_the_create_ends  # type: ignore[method-assign]
    raw = dict(loop.body)
    raw["spec"] = {**raw["spec"], "replicas": 2}
    loop.body = kopf.Body({**raw, "metadata": {**raw["metadata"], "generation": 2}})
    assert loop.services.lister is not None
    await loop.services.lister.refresh()
    await deployments.reconcile(loop.services, loop.target, loop.body, loop.state)  # starts it
    assert loop.state.creating == {1}
    loop.state.health[first] = health.Health()  # due in the next pass
    await loop.step()  # checks `first` while the create ends
    assert loop.backend.calls.count("create") == 2, loop.backend.calls
    assert len(loop.backend.sandboxes) == 2
