"""Sandbox bookkeeping and lifecycle: create, kill, pause/resume, timeouts and expiry."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from . import isolation, prom, sweep
from .builds import BuildError, TemplateRecord, TemplateStore
from .limits import Limiter
from .metrics import SAMPLE_S, Metrics
from .sandbox import SandboxError, SandboxRuntime

log = logging.getLogger("e2b_local.runtime")

ENVD_VERSION = "0.6.13"
DEFAULT_TIMEOUT_S = 300
MAX_TIMEOUT_S = 24 * 3600
READY_TIMEOUT_S = 120.0


class ApiError(Exception):
    """An error answered as E2B's JSON {code, message}."""

    def __init__(self, code: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = headers or {}


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class SandboxRecord:
    sandbox_id: str
    team: str  # the team of the API key that made it: its only viewer, and whose limits count it
    template: TemplateRecord
    alias: str | None
    started_at: datetime
    end_at: datetime
    metadata: dict[str, str]
    env_vars: dict[str, str]
    access_token: str
    allow_internet: bool
    auto_pause: bool
    auto_resume: bool
    timeout_s: int
    runtime: SandboxRuntime
    metrics: Metrics
    state: str = "running"
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def cpu_count(self) -> int:
        return self.template.cpu_count

    @property
    def memory_mb(self) -> int:
        return self.template.memory_mb


class Runtime:
    """All sandboxes of one e2b-local server."""

    def __init__(
        self,
        host: isolation.Host,
        max_sandboxes: int,
        store: TemplateStore,
        limiter: Limiter | None = None,
    ) -> None:
        self.host = host
        self.max_sandboxes = max_sandboxes
        self.templates = store
        self.limiter = limiter or Limiter()
        self.sandboxes: dict[str, SandboxRecord] = {}
        self.idempotency: dict[tuple[str, str], str] = {}
        self._keyed: dict[tuple[str, str], asyncio.Future[SandboxRecord]] = {}
        """Keyed creates still starting."""
        self._starting: Counter[str] = Counter()
        self._reaper: asyncio.Task | None = None
        self._sampler: asyncio.Task | None = None
        self._destroying: set[asyncio.Task] = set()

    async def startup(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, sweep.start_host, self.host)
        self.templates.attach()
        self._reaper = asyncio.get_running_loop().create_task(self._expire_loop())
        self._sampler = asyncio.get_running_loop().create_task(self._sample_loop())

    async def shutdown(self) -> None:
        for task in (self._reaper, self._sampler):
            if task:
                task.cancel()
        await self.templates.shutdown()
        await asyncio.gather(*self._destroying, return_exceptions=True)
        # The server is going away: end every sandbox at once instead of one `crun delete`
        # each (50 of those took 9 s on two busy cores). The host then waits for their
        # processes, removes their cgroups and crun state in bulk; veths go with the network
        # namespaces and overlays with the run dir's tmpfs.
        started, count = time.monotonic(), len(self.sandboxes)
        for sbx in self.sandboxes.values():
            sbx.state = "killed"
            sbx.runtime.abandon()
        self.sandboxes.clear()
        await asyncio.get_running_loop().run_in_executor(None, self.host.shutdown)
        log.info("ended %d sandboxes in %.1fs", count, time.monotonic() - started)

    def running_count(self, team: str | None = None) -> int:
        """Running and starting sandboxes, of one team or all."""
        mine = (s for s in self.sandboxes.values() if team is None or s.team == team)
        starting = self._starting[team] if team is not None else self._starting.total()
        return starting + sum(1 for s in mine if s.state == "running")

    def _check_caps(self, team: str) -> None:
        """429 when the host's sandbox cap or the team's concurrency limit is reached."""
        if self.running_count() >= self.max_sandboxes:
            raise ApiError(
                429,
                f"You have reached the maximum number of concurrent E2B sandboxes "
                f"({self.max_sandboxes}). Please kill some sandboxes and try again.",
                {"Retry-After": "1"},
            )
        refusal = self.limiter.over_cap(self.running_count(team))
        if refusal is not None:
            raise ApiError(429, refusal.message, refusal.headers)

    def find(self, sandbox_id: str) -> SandboxRecord | None:
        """The sandbox with its timeout applied at this instant: one whose endAt has passed
        is paused (on_timeout pause) or gone, whatever the expiry loop has done yet."""
        sbx = self.sandboxes.get(sandbox_id)
        if sbx is not None and sbx.state == "running" and sbx.end_at <= now():
            self._time_out(sbx)
        return self.sandboxes.get(sandbox_id)

    def get(self, sandbox_id: str, team: str) -> SandboxRecord:
        """The team's sandbox; another team's is as absent as a missing one (E2B's 404)."""
        sbx = self.find(sandbox_id)
        if sbx is None or sbx.team != team:
            raise ApiError(404, f"sandbox \"{sandbox_id}\" doesn't exist or you don't have access")
        return sbx

    def all(self, team: str) -> list[SandboxRecord]:
        """Every sandbox of the team, timeouts applied."""
        found = (self.find(sid) for sid in list(self.sandboxes))
        return [s for s in found if s is not None and s.team == team]

    async def for_traffic(self, sandbox_id: str) -> SandboxRecord | None:
        """The running sandbox that a request to its envd or ports reaches, resuming a
        paused one with auto_resume (for its create-time timeout); None if there is none."""
        sbx = self.find(sandbox_id)
        if sbx is not None and sbx.state == "paused" and sbx.auto_resume:
            with contextlib.suppress(ApiError):
                await self.connect(sandbox_id, sbx.team, sbx.timeout_s)
        return sbx if sbx is not None and sbx.state == "running" else None

    async def create(
        self,
        team: str,
        template_ref: str,
        timeout: int,
        metadata: dict[str, str],
        env_vars: dict[str, str],
        allow_internet: bool,
        auto_pause: bool,
        auto_resume: bool,
        idempotency_key: str | None,
    ) -> SandboxRecord:
        """A new sandbox; a key given before returns that create's sandbox, also while it
        still starts (a client that stopped waiting sends the same create again)."""
        args = (team, template_ref, timeout, metadata, env_vars, allow_internet, auto_pause)
        if not idempotency_key:
            return await self._create(*args, auto_resume, None)
        key = (team, idempotency_key)
        if key in self.idempotency:
            existing = self.sandboxes.get(self.idempotency[key])
            if existing is not None:
                return existing
        starting = self._keyed.get(key)
        if starting is None:
            starting = asyncio.ensure_future(self._create(*args, auto_resume, idempotency_key))
            self._keyed[key] = starting

            def settled(task: asyncio.Future[SandboxRecord]) -> None:
                del self._keyed[key]
                if not task.cancelled():
                    task.exception()  # seen, even if every request for it went away

            starting.add_done_callback(settled)
        # Shielded: a request that goes away leaves the create to the one sent again.
        return await asyncio.shield(starting)

    async def _create(
        self,
        team: str,
        template_ref: str,
        timeout: int,
        metadata: dict[str, str],
        env_vars: dict[str, str],
        allow_internet: bool,
        auto_pause: bool,
        auto_resume: bool,
        idempotency_key: str | None,
    ) -> SandboxRecord:
        try:
            await self.templates.ensure_builtin(template_ref)
        except BuildError as e:
            raise ApiError(500, str(e)) from e
        template, alias = self.templates.resolve(template_ref, team)
        if timeout <= 0 or timeout > MAX_TIMEOUT_S:
            raise ApiError(400, f"Timeout must be between 1 and {MAX_TIMEOUT_S} seconds")
        self._check_caps(team)
        sandbox_id = "i" + secrets.token_hex(10)
        runtime = SandboxRuntime(
            sandbox_id,
            self.host,
            self.templates.lowers(template),
            internet=allow_internet,
            memory_mb=template.memory_mb,
            cpu_count=template.cpu_count,
        )
        self._starting[team] += 1
        t0 = time.monotonic()
        try:
            await runtime.start()
            if template.start_cmd:
                await self._start_and_wait_ready(runtime, template)
            prom.START_DURATION.observe(time.monotonic() - t0)
        except SandboxError as e:
            await runtime.destroy()
            raise ApiError(500, str(e)) from e
        except BaseException:
            await runtime.destroy()
            raise
        finally:
            self._starting[team] -= 1
        started = now()
        sbx = SandboxRecord(
            sandbox_id=sandbox_id,
            template=template,
            alias=alias,
            started_at=started,
            end_at=started + timedelta(seconds=timeout),
            metadata=metadata,
            env_vars=env_vars,
            access_token=secrets.token_urlsafe(24),
            allow_internet=allow_internet,
            auto_pause=auto_pause,
            auto_resume=auto_resume,
            timeout_s=timeout,
            runtime=runtime,
            metrics=Metrics(runtime.cgroups, runtime.upper, template.cpu_count),
            team=team,
        )
        self.sandboxes[sandbox_id] = sbx
        prom.CREATES.inc()
        template.spawn_count += 1
        template.last_spawned_at = started
        if idempotency_key:
            self.idempotency[team, idempotency_key] = sandbox_id
        return sbx

    async def _start_and_wait_ready(self, runtime: SandboxRuntime, t: TemplateRecord) -> None:
        """Re-run the template's start command and poll its ready command (see README)."""
        user = runtime.user(t.user)
        await runtime.spawn("/bin/bash", ["-l", "-c", t.start_cmd or ""], t.envs, t.workdir, user)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while t.ready_cmd:
            rc = await runtime.run(t.ready_cmd, user, t.envs, t.workdir, timeout=30)
            if rc == 0:
                return
            if time.monotonic() > deadline:
                raise SandboxError(f"ready command '{t.ready_cmd}' did not succeed in time")
            await asyncio.sleep(0.05)

    async def kill(self, sandbox_id: str, team: str) -> None:
        sbx = self.get(sandbox_id, team)
        await self._destroy(sbx)

    async def _destroy(self, sbx: SandboxRecord) -> None:
        self.sandboxes.pop(sbx.sandbox_id, None)
        sbx.state = "killed"
        await sbx.runtime.destroy()

    def _time_out(self, sbx: SandboxRecord) -> None:
        """Apply a running sandbox's passed timeout now: freeze it (on_timeout pause) or
        forget it at once and tear it down in the background."""
        paused = False
        if sbx.auto_pause:
            with contextlib.suppress(OSError):
                paused = sbx.runtime.freeze(True)
        if paused:
            sbx.state = "paused"
            log.info("sandbox %s paused at its timeout", sbx.sandbox_id)
            return
        log.info("sandbox %s killed at its timeout", sbx.sandbox_id)
        self.sandboxes.pop(sbx.sandbox_id, None)
        sbx.state = "killed"
        task = asyncio.get_running_loop().create_task(sbx.runtime.destroy())
        self._destroying.add(task)
        task.add_done_callback(self._destroying.discard)

    def set_timeout(self, sandbox_id: str, team: str, timeout: int) -> None:
        sbx = self.get(sandbox_id, team)
        if timeout <= 0 or timeout > MAX_TIMEOUT_S:
            raise ApiError(400, f"Timeout must be between 1 and {MAX_TIMEOUT_S} seconds")
        sbx.end_at = now() + timedelta(seconds=timeout)

    async def pause(self, sandbox_id: str, team: str) -> None:
        """Freeze a running sandbox; 409 if it is paused already. State changes happen
        without an await in between, so concurrent calls apply in the order they arrive."""
        sbx = self.get(sandbox_id, team)
        async with sbx.lock:
            if sbx.state == "killed":
                raise ApiError(404, f'sandbox "{sandbox_id}" doesn\'t exist')
            if sbx.state == "paused":
                raise ApiError(409, f"Sandbox {sandbox_id} is already paused")
            if not sbx.runtime.freeze(True):
                raise ApiError(503, "pausing needs the cgroup freezer, which this host lacks")
            sbx.state = "paused"
            log.info("sandbox %s paused", sandbox_id)

    async def connect(
        self, sandbox_id: str, team: str, timeout: int | None
    ) -> tuple[SandboxRecord, bool]:
        """Resume a paused sandbox (True) or extend a running one's timeout (False)."""
        sbx = self.get(sandbox_id, team)
        async with sbx.lock:
            if sbx.state == "killed":
                raise ApiError(404, f'sandbox "{sandbox_id}" doesn\'t exist')
            resumed = False
            if sbx.state == "paused":
                self._check_caps(sbx.team)
                sbx.runtime.freeze(False)
                sbx.state = "running"
                resumed = True
                log.info("sandbox %s resumed", sandbox_id)
            t = timeout or DEFAULT_TIMEOUT_S
            new_end = now() + timedelta(seconds=t)
            if resumed or new_end > sbx.end_at:
                sbx.end_at = new_end
        return sbx, resumed

    async def _sample_loop(self) -> None:
        """Every SAMPLE_S, one metrics sample of each running sandbox (paused ones have none)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SAMPLE_S)
            running = [s for s in self.sandboxes.values() if s.state == "running"]
            await asyncio.gather(
                *(loop.run_in_executor(None, s.metrics.sample) for s in running),
                return_exceptions=True,
            )

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            t = now()
            for sbx in list(self.sandboxes.values()):
                if sbx.state == "running" and not sbx.runtime.alive:
                    # A VM that crashed is gone on E2B too: never list a dead sandbox as running.
                    log.warning("sandbox %s died (its init exited); removing it", sbx.sandbox_id)
                    with contextlib.suppress(Exception):
                        await self._destroy(sbx)
                    continue
                if sbx.state == "running" and sbx.end_at <= t:
                    self._time_out(sbx)
