"""E2BDeployment decisions, as a reducer: (observation, memory) -> plan. No I/O.

The plan carries the actions, the status to write, the events to post, the memory for the
next pass and when to come back; the handler only observes, acts and writes. Each instance
index in wanted_hashes (the first replicas not retired,
reconcile/slots.py) is a slot. A sandbox belongs to the slot named in its
metadata and is *current* when it was made from the wanted hash of that slot (template
build, env, config and the slot's own config). Rollouts fill slots with current sandboxes
within maxSurge and retire outdated ones within maxUnavailable, as a Deployment does.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from ..api import E2BDeploymentSpec, E2BDeploymentStatus, SandboxStatus, ready_text, selector_for
from .backoff import backoff, reported
from .conditions import Want, merge
from .health import STARTUP_FIRST_DELAY, Health
from .observed import ObservedSandbox, Problem, Throttle
from .restarts import (
    FAILURE_REASONS,
    RESET_SECONDS,
    VANISHED,
    Restarts,
    from_status,
    restarted,
)

KEEPALIVE_FRACTION = 0.5
"""Refresh a sandbox's timeout once less than this share of it is left."""
PAUSED_RECHECK_SECONDS = 300.0
THROTTLE_REPORTED_AFTER = 1.0
"""Creates waiting on E2B's limits this long show in status (a momentary wait does not)."""
CAPACITY_DEGRADED_AFTER = 30.0
"""Creates held by E2B's sandbox cap this long make the deployment Degraded."""


@dataclass(frozen=True)
class Memory:
    """What a deployment's loop carries from one pass to the next (lost on restart: sandboxes
    are listed again and their health is read back from status)."""

    replicas: int | None = None
    """spec.replicas at the last pass (a change is a Scaled event)."""
    progress_key: tuple[int, int, int] | None = None
    """(generation, ready, updated ready) when progress was last made ..."""
    progress_at: datetime | None = None
    """... and when (for progressDeadlineSeconds)."""
    failures: int = 0
    """Failed passes in a row (backoff)."""
    ramp: int | None = None
    """After failed creates: creates in flight at most (doubling); None: the whole budget."""
    create_failures: int = 0
    """Failed creates in a row."""
    retry_creates_at: datetime | None = None
    """No new creates before this (backoff after a failed create)."""
    refreshed: dict[str, datetime] = field(default_factory=dict)
    """Per sandbox: when its timeout was last refreshed (the listing may not show it yet)."""
    restarts: dict[int, Restarts] | None = None
    """Per slot: sandboxes replaced for failures in a row (None: read them from status)."""


@dataclass(frozen=True)
class Event:
    """A Kubernetes event to post on the deployment."""

    type: str  # Normal or Warning
    reason: str
    message: str


@dataclass(frozen=True)
class TemplateView:
    """What a deployment needs to know of its E2BTemplate."""

    name: str
    ready: bool
    failed: bool = False
    template_id: str | None = None
    spec_hash: str | None = None
    message: str = ""
    deleting: bool = False
    """Marked for deletion: it waits for its deployments to stop using it."""
    credentials_hash: str | None = None
    """The E2B account (connection fingerprint) the build is known to be usable with."""


@dataclass(frozen=True)
class Observation:
    """Everything a decision depends on."""

    generation: int
    name: str
    spec: E2BDeploymentSpec
    template: TemplateView | None
    wanted_hashes: dict[int, str]
    sandboxes: tuple[ObservedSandbox, ...]
    health: dict[str, Health]
    previous: E2BDeploymentStatus | None
    now: datetime
    has_health_check: bool = True
    problem: Problem | None = None
    """A problem of the spec or its references (Secret, config)."""
    backend_error: Problem | None = None
    """E2B could not be listed; `sandboxes` are then the ones the last status showed."""
    creating: frozenset[int] = frozenset()
    throttle: Throttle | None = None
    """Why the creates in flight wait on E2B's limits (rate or sandbox cap), if they do."""
    create_budget: int = 32
    backoff_cap: float = 60.0


@dataclass
class Plan:
    """What to do, write and post, what to remember and when to come back."""

    create: list[int] = field(default_factory=list)
    delete: list[tuple[ObservedSandbox, str]] = field(default_factory=list)
    pause: list[ObservedSandbox] = field(default_factory=list)
    resume: list[ObservedSandbox] = field(default_factory=list)
    keepalive: list[ObservedSandbox] = field(default_factory=list)
    status: E2BDeploymentStatus = field(default_factory=E2BDeploymentStatus)
    write: bool = True
    """False: a first transient E2B failure is retried quietly (no status, no action)."""
    events: list[Event] = field(default_factory=list)
    memory: Memory = field(default_factory=Memory)
    wait: float = 0.0
    """Seconds until the next pass is due (a watch event or a listing change comes sooner)."""

    @property
    def acts(self) -> bool:
        """Anything to do besides keep-alives."""
        return bool(self.create or self.delete or self.pause or self.resume)

    @property
    def idle(self) -> bool:
        return not (self.acts or self.keepalive)


def decide(obs: Observation, memory: Memory | None = None) -> Plan:
    """The one decision function for an E2BDeployment."""
    memory = memory or Memory()
    obs = _with_refreshes(obs, memory)
    err = obs.backend_error
    if err is not None and not err.stalled and not reported(memory.failures, transient=True):
        failures = memory.failures + 1
        quiet = replace(memory, failures=failures, replicas=obs.spec.replicas)
        return Plan(write=False, memory=quiet, wait=backoff(failures, obs.backoff_cap))
    plan = _actions(obs)
    problem = obs.problem or err
    restarts = _restarts(obs, memory, plan, acting=problem is None)
    held = {i for i, r in restarts.items() if r.waiting(obs.now)}
    plan.create = [i for i in plan.create if i not in held]
    plan.status, progress = _status(obs, memory, plan, restarts)
    plan.events = _events(obs, memory, plan.status)
    failures = memory.failures + 1 if problem is not None else 0
    listed = {s.sandbox_id for s in obs.sandboxes}
    plan.memory = replace(
        memory,
        replicas=obs.spec.replicas,
        progress_key=progress[0],
        progress_at=progress[1],
        failures=failures,
        refreshed={sid: at for sid, at in memory.refreshed.items() if sid in listed},
        restarts=restarts,
    )
    if problem is not None:
        plan.create, plan.delete, plan.pause, plan.resume, plan.keepalive = [], [], [], [], []
        plan.wait = obs.backoff_cap if problem.stalled else backoff(failures, obs.backoff_cap)
    else:
        retry_in = _creates_held(obs, memory)
        room = 0 if retry_in else (memory.ramp or obs.create_budget) - len(obs.creating)
        plan.create = plan.create[: max(room, 0)]
        waits = [r.waiting(obs.now) for i, r in restarts.items() if i in held]
        plan.wait = 0.0 if plan.acts else min(_next_due(obs), retry_in or math.inf, *waits)
    return plan


def _restarts(obs: Observation, memory: Memory, plan: Plan, *, acting: bool) -> dict[int, Restarts]:
    """Each wanted slot's failures in a row, after this pass: one more for each sandbox it
    retires for a failure; none once its sandbox has been healthy for RESET_SECONDS."""
    known = from_status(obs.previous) if memory.restarts is None else memory.restarts
    records = {i: r for i, r in known.items() if i in obs.wanted_hashes}
    for s in obs.sandboxes:
        if s.index in records and _settled(s, obs):
            del records[s.index]
    for index, sandbox_id in _vanished(obs).items() if acting else []:
        records[index] = restarted(
            records.get(index),
            sandbox_id=sandbox_id,
            reason=VANISHED,
            message=f"sandbox {sandbox_id} disappeared without the operator killing it "
            "(killed outside the operator, expired, or died after its create)",
            now=obs.now,
        )
    for s, why in plan.delete if acting else []:
        if why in FAILURE_REASONS and s.index in obs.wanted_hashes:
            health = obs.health.get(s.sandbox_id, Health())
            records[s.index] = restarted(
                records.get(s.index),
                sandbox_id=s.sandbox_id,
                reason=why,
                message=_failure(why, health, obs.spec),
                now=obs.now,
                exit_code=health.main_exit if why == "MainScriptExited" else None,
            )
    return records


def _vanished(obs: Observation) -> dict[int, str]:
    """Per wanted slot, a sandbox the last status showed that is gone now though the operator
    did not retire it (its entry would say Terminating): one per slot, however many went."""
    present = {s.sandbox_id for s in obs.sandboxes}
    gone: dict[int, str] = {}
    for e in obs.previous.sandboxes if obs.previous else []:
        ours = e.phase == "Terminating"
        if not ours and e.sandbox_id not in present and e.index in obs.wanted_hashes:
            gone.setdefault(e.index, e.sandbox_id)
    return gone


def _settled(s: ObservedSandbox, obs: Observation) -> bool:
    """Current, ready, and healthy for RESET_SECONDS: its slot's failures are history."""
    if not (_current(s, obs) and _ready(s, obs)):
        return False
    health = obs.health.get(s.sandbox_id)
    since = health.since if health and health.since else s.started_at
    return since is not None and (obs.now - since).total_seconds() >= RESET_SECONDS


def _failure(why: str, health: Health, spec: E2BDeploymentSpec) -> str:
    """What made a sandbox fail, for its slot's record."""
    if why == "MainScriptExited":
        return (
            f"main script exited with code {health.main_exit} (restartPolicy {spec.restart_policy})"
        )
    if why == "StartupTimeout":
        timeout = spec.health_check.startup_timeout_seconds
        return f"no health check passed in {timeout}s: {health.message}".rstrip(": ")
    return health.message


def _creates_held(obs: Observation, memory: Memory) -> float:
    """Seconds until creates may resume after a failed one (0: they may)."""
    if memory.retry_creates_at is None:
        return 0.0
    return max((memory.retry_creates_at - obs.now).total_seconds(), 0.0)


def after_create(memory: Memory, *, failed: bool, budget: int, now: datetime, cap: float) -> Memory:
    """Creates run all at once within the budget. After a failed one: none for a backoff,
    then one in flight, doubling while they succeed."""
    if failed:
        failures = memory.create_failures + 1
        return replace(
            memory,
            ramp=1,
            create_failures=failures,
            retry_creates_at=now + timedelta(seconds=backoff(failures, cap)),
        )
    ramp = None if memory.ramp is None or memory.ramp * 2 >= budget else memory.ramp * 2
    return replace(memory, ramp=ramp, create_failures=0, retry_creates_at=None)


def recovered(memory: Memory) -> Memory:
    """E2B answers again after an outage: no backoff left to sit out (creates still start
    one at a time and double)."""
    return replace(memory, failures=0, create_failures=0, retry_creates_at=None)


def after_keepalive(memory: Memory, sandbox_ids: list[str], now: datetime) -> Memory:
    """Timeouts refreshed: until a listing shows their new end, count from ``now``."""
    return replace(memory, refreshed={**memory.refreshed, **dict.fromkeys(sandbox_ids, now)})


def _with_refreshes(obs: Observation, memory: Memory) -> Observation:
    """The observation with each sandbox's end at least its last refresh plus the timeout,
    so a listing taken before a refresh does not ask for it again."""
    if not memory.refreshed:
        return obs
    timeout = timedelta(seconds=obs.spec.timeout_seconds)

    def refreshed(s: ObservedSandbox) -> ObservedSandbox:
        at = memory.refreshed.get(s.sandbox_id)
        if at is None or s.end_at is None or s.end_at >= at + timeout:
            return s
        return replace(s, end_at=at + timeout)

    return replace(obs, sandboxes=tuple(refreshed(s) for s in obs.sandboxes))


def after_failure(memory: Memory, cap: float) -> tuple[Memory, float]:
    """Acting failed: one more failure, and how long to wait before the next pass."""
    failures = memory.failures + 1
    return replace(memory, failures=failures), backoff(failures, cap)


def _actions(obs: Observation) -> Plan:
    plan = Plan()
    spec = obs.spec
    live = [s for s in obs.sandboxes if s.index >= 0]
    plan.delete += [(s, "Unmanaged") for s in obs.sandboxes if s.index < 0]
    blocked = obs.problem is not None or obs.template is None or not obs.template.ready
    if spec.paused:
        plan.pause = [s for s in live if s.state == "running"]
    else:
        plan.resume = [s for s in live if s.state == "paused"]
        if not blocked:
            _roll(obs, live, plan)
        plan.keepalive = [s for s in live if s.state == "running" and _expiring(s, obs)]
    return plan


def _next_due(obs: Observation) -> float:
    """The next health check or keep-alive of any sandbox, at most one interval away."""
    spec = obs.spec
    if spec.paused:
        return PAUSED_RECHECK_SECONDS
    interval = float(spec.health_check.interval_seconds)
    waits = [interval]
    for s in obs.sandboxes:
        health = obs.health.get(s.sandbox_id)
        if health and health.checked_at:
            waits.append(health.wait(obs.now, interval))
        if s.end_at:
            left = (s.end_at - obs.now).total_seconds()
            waits.append(left - spec.timeout_seconds * KEEPALIVE_FRACTION)
    if obs.throttle is not None:
        # Look again when the wait shows in status, and when the cap makes it Degraded.
        for threshold in (THROTTLE_REPORTED_AFTER, CAPACITY_DEGRADED_AFTER):
            if obs.throttle.waited_seconds < threshold:
                waits.append(threshold - obs.throttle.waited_seconds)
                break
    return max(min(waits), STARTUP_FIRST_DELAY)


def _events(obs: Observation, memory: Memory, status: E2BDeploymentStatus) -> list[Event]:
    """Scaled when replicas changed; a Warning when the deployment becomes Stalled or
    Degraded (not on every pass)."""
    events = []
    if memory.replicas is not None and memory.replicas != obs.spec.replicas:
        events.append(
            Event("Normal", "Scaled", f"scaled from {memory.replicas} to {obs.spec.replicas}")
        )
    before = {c.type: c.status for c in (obs.previous.conditions if obs.previous else [])}
    for c in status.conditions:
        if (
            c.type in ("Stalled", "Degraded")
            and c.status == "True"
            and before.get(c.type) != "True"
        ):
            events.append(Event("Warning", c.reason, c.message))
    return events


def _roll(obs: Observation, live: list[ObservedSandbox], plan: Plan) -> None:
    spec = obs.spec
    desired = spec.replicas
    slots: dict[int, list[ObservedSandbox]] = defaultdict(list)
    for s in live:
        slots[s.index].append(s)
    deleting: set[str] = set()

    def retire(s: ObservedSandbox, why: str) -> None:
        deleting.add(s.sandbox_id)
        plan.delete.append((s, why))

    # Beyond the wanted slots (scaled down or retired): remove, highest index first.
    for index in sorted((i for i in slots if i not in obs.wanted_hashes), reverse=True):
        for s in slots.pop(index):
            retire(s, "ScaledDown")
    # Failed health: replace regardless of availability (it is not available anyway).
    threshold = spec.health_check.failure_threshold
    for members in slots.values():
        for s in members:
            if obs.health.get(s.sandbox_id, Health()).failing(threshold):
                retire(s, "Unhealthy")
            elif _main_failed(s, obs):
                retire(s, "MainScriptExited")
            elif _startup_timed_out(s, obs):
                retire(s, "StartupTimeout")
    # Duplicates of a current sandbox in one slot (a lost response, an adoption): keep one.
    for members in slots.values():
        current = [s for s in members if _current(s, obs) and s.sandbox_id not in deleting]
        current.sort(key=lambda s: (not _ready(s, obs), s.started_at or obs.now))
        for extra in current[1:]:
            retire(extra, "Duplicate")
    # Slots whose current sandbox is ready: their outdated sandboxes can go at no cost.
    for members in slots.values():
        if any(
            _current(s, obs) and _ready(s, obs) and s.sandbox_id not in deleting for s in members
        ):
            for s in members:
                if not _current(s, obs) and s.sandbox_id not in deleting:
                    retire(s, "Replaced")
    surge, unavailable = _budgets(spec)
    if spec.strategy.type == "Recreate":
        surge = 0
        unavailable = desired
    remaining = [s for s in live if s.sandbox_id not in deleting]
    total = len(remaining) + len(obs.creating)
    available = sum(1 for s in remaining if _ready(s, obs))
    floor = desired - unavailable
    outdated_slots = {
        s.index for s in remaining if not _current(s, obs) and s.index in obs.wanted_hashes
    }
    # Fill empty slots first, then surge into outdated ones; never above replicas + maxSurge.
    missing = [
        i
        for i in sorted(obs.wanted_hashes)
        if i not in obs.creating and not any(_current(s, obs) for s in remaining if s.index == i)
    ]
    empty = [i for i in missing if i not in outdated_slots]
    surging = (
        [] if spec.strategy.type == "Recreate" else [i for i in missing if i in outdated_slots]
    )
    for index in [*empty, *surging]:
        if total < desired + surge:
            plan.create.append(index)
            total += 1
    # Retire outdated sandboxes whose slot has no ready replacement, within maxUnavailable.
    for s in sorted(remaining, key=lambda s: (_ready(s, obs), -s.index)):
        if _current(s, obs) or s.sandbox_id in deleting:
            continue
        if _ready(s, obs):
            if available - 1 < floor:
                continue
            available -= 1
        retire(s, "Outdated")


def _budgets(spec: E2BDeploymentSpec) -> tuple[int, int]:
    """maxSurge (rounded up) and maxUnavailable (rounded down), as a Deployment resolves them."""
    ru = spec.strategy.rolling_update
    surge = _resolve(ru.max_surge, spec.replicas, math.ceil)
    unavailable = _resolve(ru.max_unavailable, spec.replicas, math.floor)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def _resolve(value: int | str, replicas: int, rounding) -> int:
    if isinstance(value, int):
        return value
    return int(rounding(replicas * int(value.rstrip("%")) / 100))


def _current(s: ObservedSandbox, obs: Observation) -> bool:
    return s.template_hash == obs.wanted_hashes.get(s.index)


def _main_failed(s: ObservedSandbox, obs: Observation) -> bool:
    """Its main script exited, and restartPolicy says that is a failure."""
    code = obs.health.get(s.sandbox_id, Health()).main_exit
    policy = obs.spec.restart_policy
    return code is not None and (policy == "Always" or (policy == "OnFailure" and code != 0))


def _ready(s: ObservedSandbox, obs: Observation) -> bool:
    if s.state != "running" or not s.confirmed or _main_failed(s, obs):
        return False
    health = obs.health.get(s.sandbox_id)
    if health is None:
        return not obs.has_health_check
    return health.healthy is True


def _startup_timed_out(s: ObservedSandbox, obs: Observation) -> bool:
    """Running, never passed a health check, and older than the startup timeout."""
    if not obs.has_health_check or s.state != "running" or s.started_at is None:
        return False
    if obs.health.get(s.sandbox_id, Health()).passed:
        return False
    age = (obs.now - s.started_at).total_seconds()
    return age > obs.spec.health_check.startup_timeout_seconds


def _expiring(s: ObservedSandbox, obs: Observation) -> bool:
    if s.end_at is None:
        return False
    left = s.end_at - obs.now
    return left < timedelta(seconds=obs.spec.timeout_seconds * KEEPALIVE_FRACTION)


def _status(
    obs: Observation, memory: Memory, plan: Plan, restarts: dict[int, Restarts]
) -> tuple[E2BDeploymentStatus, tuple[tuple[int, int, int], datetime]]:
    """The status, and the progress mark: (generation, ready, updated ready) and since when
    (a change in any of them is progress; replacing sandboxes that never become ready is not)."""
    spec = obs.spec
    live = [s for s in obs.sandboxes if s.index >= 0]
    gone = {s.sandbox_id for s, _ in plan.delete}
    kept = [s for s in live if s.sandbox_id not in gone]
    ready = [s for s in kept if _ready(s, obs) and s.index in obs.wanted_hashes]
    updated = [s for s in kept if _current(s, obs)]
    updated_ready = [s for s in ready if _current(s, obs)]
    unhealthy = [s for s in live if _unhealthy(obs.health.get(s.sandbox_id, Health()))]
    previous = obs.previous or E2BDeploymentStatus()
    key = (obs.generation, len(ready), len(updated_ready))
    since = memory.progress_at if key == memory.progress_key and memory.progress_at else obs.now
    waiting = {i: r for i, r in restarts.items() if r.waiting(obs.now)}
    wants = _conditions(obs, len(kept), len(updated_ready), unhealthy, waiting, plan, since)
    phase = _phase(obs, wants)
    entries = [_entry(s, obs, plan, gone) for s in sorted(live, key=_order)]
    status = E2BDeploymentStatus(
        observed_generation=obs.generation,
        phase=phase,
        replicas=len(kept),
        ready_replicas=len(ready),
        updated_replicas=len(updated),
        updated_ready_replicas=len(updated_ready),
        available_replicas=len(ready),
        ready=ready_text(len(ready), spec.replicas),
        selector=selector_for(obs.name),
        template_id=(obs.template.template_id if obs.template else None) or previous.template_id,
        conditions=merge(previous.conditions, wants, generation=obs.generation, now=obs.now),
        sandboxes=entries,
        instances=[restarts[i].status(i, obs.now) for i in sorted(restarts)],
    )
    return status, (key, since)


def _conditions(
    obs: Observation,
    existing: int,
    updated_ready: int,
    unhealthy: list[ObservedSandbox],
    waiting: dict[int, Restarts],
    plan: Plan,
    progress_since: datetime,
) -> list[Want]:
    spec = obs.spec
    desired = spec.replicas
    problem = obs.problem or obs.backend_error or _template_problem(obs)
    # Not while sandboxes are still to be killed: a status saying done before the kills
    # (written first) stayed done if the operator died before making them.
    converged = (
        updated_ready == desired
        and existing == desired
        and not (plan.create or obs.creating or plan.delete)
    )
    late = (obs.now - progress_since).total_seconds() > spec.progress_deadline_seconds
    if problem is None and not converged and not spec.paused and late:
        problem = Problem(
            "ProgressDeadlineExceeded",
            f"no progress in {spec.progress_deadline_seconds}s "
            f"({_progress(obs, existing, updated_ready, plan)}); see status.sandboxes[].message "
            "and the template's healthCheck",
            stalled=True,
        )
    stalled = problem is not None and problem.stalled
    if spec.paused:
        # Every sandbox paused is the state asked for: Ready=True (reason Paused), so kstatus
        # (Flux `wait: true`) reads it as Current; Argo CD's check shows Suspended.
        if plan.pause:
            pausing = f"pausing {len(plan.pause)} sandbox(es)"
            ready = Want("Ready", False, "Pausing", pausing)
            reconciling = Want("Reconciling", True, "Pausing", pausing)
        else:
            paused = f"{existing} sandbox(es) paused; set paused: false"
            ready = Want("Ready", True, "Paused", paused)
            reconciling = Want("Reconciling", False, "Paused", "paused")
    elif problem is not None:
        ready = Want("Ready", False, problem.reason, problem.message)
        reconciling = Want("Reconciling", not stalled, problem.reason, problem.message)
    elif converged:
        ready = Want("Ready", True, "SandboxesReady", f"{updated_ready}/{desired} sandboxes ready")
        reconciling = Want("Reconciling", False, "Converged", "")
    elif (throttle := _reported_throttle(obs)) is not None:
        detail = f"{_progress(obs, existing, updated_ready, plan)}; {throttle.message}"
        ready = Want("Ready", False, throttle.reason, detail)
        reconciling = Want("Reconciling", True, throttle.reason, detail)
    else:
        detail = _progress(obs, existing, updated_ready, plan)
        ready = Want("Ready", False, "RolloutInProgress", detail)
        reconciling = Want("Reconciling", True, "RolloutInProgress", detail)
    stalled_want = Want(
        "Stalled",
        stalled,
        problem.reason if stalled and problem else "NotStalled",
        problem.message if stalled and problem else "",
    )
    if unhealthy:
        ids = ", ".join(f"{s.sandbox_id} (instance {s.index})" for s in unhealthy[:10])
        degraded = Want(
            "Degraded",
            True,
            "SandboxUnhealthy",
            f"health check failing in {ids}; replaced after "
            f"{spec.health_check.failure_threshold} failures",
        )
    elif waiting:
        degraded = Want("Degraded", True, "InstanceBackOff", _backoff_text(waiting))
    elif obs.template is not None and obs.template.deleting:
        degraded = Want(
            "Degraded",
            True,
            "TemplateDeleting",
            f"E2BTemplate {obs.template.name!r} is being deleted and waits for this deployment; "
            "its sandboxes keep running: delete this deployment or change spec.templateRef",
        )
    elif problem is not None and not stalled and problem.fault:
        degraded = Want("Degraded", True, problem.reason, problem.message)
    elif (full := _capacity_exhausted(obs)) is not None:
        degraded = Want(
            "Degraded",
            True,
            full.reason,
            f"{_progress(obs, existing, updated_ready, plan)}; {full.message}",
        )
    else:
        degraded = Want("Degraded", False, "Healthy", "")
    return [ready, reconciling, stalled_want, degraded]


def _reported_throttle(obs: Observation) -> Throttle | None:
    t = obs.throttle
    return t if t is not None and t.waited_seconds >= THROTTLE_REPORTED_AFTER else None


def _capacity_exhausted(obs: Observation) -> Throttle | None:
    """The sandbox cap has held this deployment's creates for long: not a momentary wait."""
    t = obs.throttle
    if t is None or t.reason != "CapacityExhausted":
        return None
    return t if t.waited_seconds >= CAPACITY_DEGRADED_AFTER else None


def _template_problem(obs: Observation) -> Problem | None:
    ref = obs.spec.template_ref.name
    tpl = obs.template
    if tpl is None:
        return Problem(
            "TemplateNotFound",
            f"E2BTemplate {ref!r} does not exist in this namespace; create it or fix "
            "spec.templateRef.name",
            stalled=True,
        )
    if tpl.failed:
        return Problem(
            "TemplateFailed",
            f"E2BTemplate {ref!r} failed to build: {tpl.message}; fix the template",
            stalled=True,
        )
    if not tpl.ready:
        return Problem(
            "TemplateNotReady", f"waiting for E2BTemplate {ref!r} to build", False, fault=False
        )
    return None


def _backoff_text(waiting: dict[int, Restarts]) -> str:
    """Stable while the wait lasts (a countdown would rewrite status at every pass)."""
    parts = [
        f"instance {i} re-created at {r.next_at:%H:%M:%S}Z after {r.count} failures in a row "
        f"(last: {r.reason}: {r.message})"
        for i, r in sorted(waiting.items())[:10]
    ]
    return "; ".join(parts) + "; see status.instances"


def _progress(obs: Observation, existing: int, updated_ready: int, plan: Plan) -> str:
    parts = [f"{updated_ready}/{obs.spec.replicas} updated sandboxes ready"]
    if plan.create or obs.creating:
        parts.append(f"creating {len(plan.create) + len(obs.creating)}")
    if plan.delete:
        parts.append(f"deleting {len(plan.delete)}")
    if existing != obs.spec.replicas:
        parts.append(f"{existing} exist")
    return ", ".join(parts)


def _phase(obs: Observation, wants: list[Want]) -> str:
    by = {w.type: w for w in wants}
    if obs.spec.paused:
        return "Paused"
    if by["Stalled"].status:
        return "Failed"
    if by["Ready"].status:
        return "Degraded" if by["Degraded"].status else "Available"
    if by["Degraded"].status:
        return "Degraded"
    return "Progressing"


def _unhealthy(health: Health) -> bool:
    """Failing after it started (a starting sandbox's failed checks are not a fault yet)."""
    return health.passed and health.healthy is False


def _order(s: ObservedSandbox) -> tuple[int, str]:
    return (s.index, s.sandbox_id)


def _entry(s: ObservedSandbox, obs: Observation, plan: Plan, gone: set[str]) -> SandboxStatus:
    health = obs.health.get(s.sandbox_id, Health())
    if s.sandbox_id in gone:
        phase = "Terminating"
    elif s.state == "paused":
        phase = "Paused"
    elif _unhealthy(health):
        phase = "Unhealthy"
    elif _ready(s, obs):
        phase = "Running"
    else:
        phase = "Starting"
    return SandboxStatus(
        index=max(s.index, 0),
        sandbox_id=s.sandbox_id,
        phase=phase,
        healthy=health.healthy,
        template_hash=s.template_hash or None,
        started_at=s.started_at,
        last_health_transition_time=health.since,
        consecutive_failures=health.failures,
        message=_sandbox_message(health),
        main_exit_code=health.main_exit,
    )


def _sandbox_message(health: Health) -> str | None:
    exited = (
        f"main script exited with code {health.main_exit}" if health.main_exit is not None else ""
    )
    return "; ".join(m for m in (health.message, exited) if m)[:1024] or None
