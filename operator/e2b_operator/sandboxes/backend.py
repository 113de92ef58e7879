"""The operator's only door to E2B sandboxes: a thin adapter over ``AsyncSandbox``."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import logging
import shlex
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from e2b import (
    AsyncSandbox,
    AsyncSandboxPaginator,
    CommandExitException,
    NotFoundException,
    SandboxInfo,
    SandboxQuery,
    SandboxState,
    TimeoutException,
)

from ..reconcile.observed import CommandOutcome, ObservedSandbox
from .connection import Connection
from .errors import BackendError, SandboxGone, calling, deadline, translated
from .hedge import Latency, hedged
from .pacer import Pacer
from .ratelimit import Endpoint

log = logging.getLogger(__name__)

LIST_PAGE = 100
HANDLE_CACHE = 2048
"""Connected sandboxes kept for reuse (about 21 KB each); more are reconnected on demand,
one E2B call each. At 256, a thousand one-replica deployments made 2000 connects a minute
at idle, one per health check."""
OUTPUT_LIMIT = 64 * 1024
KILL_TIMEOUT_SECONDS = 10.0
"""How long a cancelled run waits for its command to be killed."""
QUICK_CALL_SECONDS = 10.0
"""Deadline of the control-plane calls that answer at once (a page of the listing, kill,
set_timeout, connecting to a running sandbox): one E2B does not answer fails in seconds,
not after the connection's request timeout (30 s) that a pause or a resume may need. These
calls are idempotent and hedged (hedge.py): one that hangs is sent again after about a
second, so a lost answer costs that second, not this deadline."""
CREATE_ATTEMPTS = 3
"""Tries of one create whose answer does not come in ``Connection.create_timeout``: each is
sent with the same idempotency key, so a request E2B took but never answered (hung, its
answer lost) costs that timeout, not the connection's request timeout, and makes no second
sandbox."""

P = ParamSpec("P")
T = TypeVar("T")


def paced(
    endpoint: Endpoint,
) -> Callable[
    [Callable[Concatenate[SandboxBackend, P], Awaitable[T]]],
    Callable[Concatenate[SandboxBackend, P], Awaitable[T]],
]:
    """Decorator: the call waits for its endpoint's bucket; its outcome adapts the pacing."""

    def wrap(
        fn: Callable[Concatenate[SandboxBackend, P], Awaitable[T]],
    ) -> Callable[Concatenate[SandboxBackend, P], Awaitable[T]]:
        @functools.wraps(fn)
        async def wrapper(self: SandboxBackend, *args: P.args, **kwargs: P.kwargs) -> T:
            async with self.pacer.call(endpoint):
                return await fn(self, *args, **kwargs)

        return wrapper

    return wrap


class SandboxBackend:
    """Create, list, run commands in, pause, resume and kill sandboxes; control-plane calls
    are paced by ``pacer`` (one per API key)."""

    def __init__(self, connection: Connection, pacer: Pacer | None = None) -> None:
        self.connection = connection
        self.pacer = pacer or Pacer()
        self._opts = connection.params()
        self._quick_s = min(connection.request_timeout, QUICK_CALL_SECONDS)
        self._create_s = min(connection.request_timeout, connection.create_timeout)
        self._quick = {**self._opts, "request_timeout": self._quick_s}
        self._create_opts = {**self._opts, "request_timeout": self._create_s}
        self._latency = {op: Latency(op) for op in ("list", "kill", "set_timeout", "connect")}
        # Connected sandboxes (each holds its own envd clients), most recently used last.
        self._handles: OrderedDict[str, AsyncSandbox] = OrderedDict()

    @paced(Endpoint.LIST)
    @translated
    async def list(self, metadata: dict[str, str]) -> list[ObservedSandbox]:
        """Every running or paused sandbox whose metadata contains all of ``metadata``."""
        query = SandboxQuery(metadata=metadata, state=[SandboxState.RUNNING, SandboxState.PAUSED])
        pages = AsyncSandbox.list(query=query, limit=LIST_PAGE, **self._quick)
        found: list[ObservedSandbox] = []
        while pages.has_next:
            pages, items = await self._hedged("list", functools.partial(_page, pages))
            for info in items:
                found.append(
                    ObservedSandbox(
                        sandbox_id=info.sandbox_id,
                        state="paused" if info.state == SandboxState.PAUSED else "running",
                        metadata=dict(info.metadata or {}),
                        started_at=info.started_at,
                        end_at=info.end_at,
                    )
                )
        return found

    async def create(
        self,
        template: str,
        *,
        metadata: dict[str, str],
        envs: dict[str, str],
        timeout: int,
        idempotency_key: str,
        internet: bool = True,
        turn: str = "",
        abandon: asyncio.Event | None = None,
    ) -> str:
        """Create a sandbox; a repeated ``idempotency_key`` returns the same sandbox. Waits
        for ``turn``'s turn (fair among deployments), the create rate and E2B's cap; a 429
        raises (RateLimited or CapacityExhausted) after slowing the pacer down. A create not
        answered in time is sent again at once with the same key (CREATE_ATTEMPTS)."""
        async with self.pacer.turn(turn, abandon):
            for attempt in range(1, CREATE_ATTEMPTS + 1):
                try:
                    with calling("SandboxBackend.create"):
                        async with deadline(self._create_s):
                            sbx = await AsyncSandbox.create(
                                template=template,
                                timeout=timeout,
                                metadata=metadata,
                                envs=envs,
                                allow_internet_access=internet,
                                idempotency_key=idempotency_key,
                                **self._create_opts,
                            )
                    break
                except BackendError as exc:
                    if exc.reason != "BackendTimeout" or attempt == CREATE_ATTEMPTS:
                        raise
                    log.info("a create got no answer in time: sending it again (same key)")
        self._keep(sbx)
        return sbx.sandbox_id

    @paced(Endpoint.KILL)
    @translated
    async def kill(self, sandbox_id: str) -> bool:
        """Kill a sandbox; False if it was already gone."""
        self._handles.pop(sandbox_id, None)
        return await self._hedged("kill", lambda: AsyncSandbox.kill(sandbox_id, **self._quick))

    @paced(Endpoint.PAUSE)
    @translated
    async def pause(self, sandbox_id: str) -> bool:
        """Pause a sandbox; False if it was already paused. Not hedged: E2B saves the
        sandbox's memory meanwhile (seconds per GiB)."""
        self._handles.pop(sandbox_id, None)
        async with deadline(self.connection.request_timeout):
            return await AsyncSandbox.pause(sandbox_id, **self._opts)

    @paced(Endpoint.CONNECT)
    @translated
    async def resume(self, sandbox_id: str, timeout: int) -> None:
        """Resume a paused sandbox (E2B's connect), giving it ``timeout`` seconds to live.
        Not hedged: E2B restores the sandbox meanwhile."""
        async with deadline(self.connection.request_timeout):
            sbx = await AsyncSandbox.connect(sandbox_id, timeout=timeout, **self._opts)
        self._keep(sbx)

    @paced(Endpoint.CONNECT)
    @translated
    async def set_timeout(self, sandbox_id: str, timeout: int) -> None:
        """Let the sandbox live ``timeout`` seconds from now."""
        await self._hedged(
            "set_timeout", lambda: AsyncSandbox.set_timeout(sandbox_id, timeout, **self._quick)
        )

    @translated
    async def write_files(self, sandbox_id: str, files: dict[str, str]) -> None:
        sbx = await self._handle(sandbox_id)
        for path, content in files.items():
            await sbx.files.write(path, content)

    @translated
    async def run(
        self,
        sandbox_id: str,
        command: str,
        *,
        timeout: float,
        envs: dict[str, str] | None = None,
        cwd: str | None = None,
        on_stdout: Callable[[str], None] | None = None,
        on_stderr: Callable[[str], None] | None = None,
    ) -> CommandOutcome:
        """Run a shell command to completion, passing output chunks to ``on_stdout`` and
        ``on_stderr`` as they arrive. A non-zero exit, a timeout or a failure inside the
        sandbox is an outcome; only failing to reach the sandbox raises ``BackendError``.
        Cancelled, it kills the command's process (a closed stream leaves it running)."""
        sbx = await self._handle(sandbox_id)
        started = time.monotonic()
        try:
            handle = await sbx.commands.run(
                command,
                background=True,
                envs=envs,
                cwd=cwd,
                timeout=timeout,
                on_stdout=on_stdout,
                on_stderr=on_stderr,
            )
            try:
                result = await handle.wait()
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(handle.kill(), KILL_TIMEOUT_SECONDS)
                raise
        except CommandExitException as exc:
            # Killed at its deadline (envd ends it), or failed on its own.
            late = bool(timeout) and time.monotonic() - started >= timeout
            return CommandOutcome(exc.exit_code, _cut(exc.stdout), _cut(exc.stderr), timed_out=late)
        except Exception as exc:  # the command did not complete: a failed outcome
            # TimeoutException itself is the command's deadline; its subclasses say the
            # sandbox is gone or unreachable.
            timed_out = type(exc) is TimeoutException
            error = f"{type(exc).__name__}: {exc}"[:1024]
            return CommandOutcome(-1, error=error, timed_out=timed_out)
        return CommandOutcome(result.exit_code, _cut(result.stdout), _cut(result.stderr))

    @translated
    async def start(
        self, sandbox_id: str, command: str, *, envs: dict[str, str], cwd: str, log: str
    ) -> int:
        """Start a long-running command in the background, output to ``log``; return its PID.
        The command runs on after we stop following it."""
        sbx = await self._handle(sandbox_id)
        wrapped = f"exec >>{shlex.quote(log)} 2>&1; {command}"
        handle = await sbx.commands.run(wrapped, background=True, envs=envs, cwd=cwd, timeout=0)
        # Its exit is read by the health probe; following its stream would hold one of the
        # SDK's HTTP connections (200 in all) for the app's whole life.
        await handle.disconnect()
        return handle.pid

    async def _handle(self, sandbox_id: str) -> AsyncSandbox:
        sbx = self._handles.get(sandbox_id) or await self._connect(sandbox_id)
        self._keep(sbx)
        return sbx

    @paced(Endpoint.CONNECT)
    @translated
    async def _connect(self, sandbox_id: str) -> AsyncSandbox:
        try:  # the handle's envd calls use the connection's own request timeout
            return await self._hedged(
                "connect", lambda: AsyncSandbox.connect(sandbox_id, **self._opts)
            )
        except NotFoundException as exc:
            raise SandboxGone(sandbox_id) from exc

    async def _hedged(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        """An idempotent call that must answer within QUICK_CALL_SECONDS, hedged."""

        async def bounded() -> T:
            async with deadline(self._quick_s):
                return await call()

        return await hedged(bounded, self._latency[operation])

    def _keep(self, sbx: AsyncSandbox) -> None:
        self._handles[sbx.sandbox_id] = sbx
        self._handles.move_to_end(sbx.sandbox_id)
        while len(self._handles) > HANDLE_CACHE:
            self._handles.popitem(last=False)


async def _page(
    pages: AsyncSandboxPaginator,
) -> tuple[AsyncSandboxPaginator, list[SandboxInfo]]:
    """The next page, read with a copy of the paginator (a hedged page's two requests must
    not share its cursor): the copy, which now points past the page, and the page."""
    mine = copy.copy(pages)
    return mine, await mine.next_items()


def _cut(text: Any) -> str:
    text = text or ""
    return text if len(text) <= OUTPUT_LIMIT else text[-OUTPUT_LIMIT:]
