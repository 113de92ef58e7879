"""The operator's only door to E2B sandboxes: a thin adapter over ``AsyncSandbox``."""

from __future__ import annotations

import shlex
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from e2b import AsyncSandbox, CommandExitException, NotFoundException, SandboxQuery, SandboxState

from ..reconcile.observed import CommandOutcome, ObservedSandbox
from .connection import Connection
from .errors import SandboxGone, translated

LIST_PAGE = 100
HANDLE_CACHE = 256
"""Connected sandboxes kept for reuse; more are reconnected on demand (one API call)."""
OUTPUT_LIMIT = 64 * 1024


class SandboxBackend:
    """Create, list, run commands in, pause, resume and kill sandboxes."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._opts = connection.params()
        # Connected sandboxes (each holds its own envd clients), most recently used last.
        self._handles: OrderedDict[str, AsyncSandbox] = OrderedDict()

    @translated
    async def list(self, metadata: dict[str, str]) -> list[ObservedSandbox]:
        """Every running or paused sandbox whose metadata contains all of ``metadata``."""
        query = SandboxQuery(metadata=metadata, state=[SandboxState.RUNNING, SandboxState.PAUSED])
        pages = AsyncSandbox.list(query=query, limit=LIST_PAGE, **self._opts)
        found: list[ObservedSandbox] = []
        while pages.has_next:
            for info in await pages.next_items():
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

    @translated
    async def create(
        self,
        template: str,
        *,
        metadata: dict[str, str],
        envs: dict[str, str],
        timeout: int,
        idempotency_key: str,
        internet: bool = True,
    ) -> str:
        """Create a sandbox; a repeated ``idempotency_key`` returns the same sandbox."""
        sbx = await AsyncSandbox.create(
            template=template,
            timeout=timeout,
            metadata=metadata,
            envs=envs,
            allow_internet_access=internet,
            idempotency_key=idempotency_key,
            **self._opts,
        )
        self._keep(sbx)
        return sbx.sandbox_id

    @translated
    async def kill(self, sandbox_id: str) -> bool:
        """Kill a sandbox; False if it was already gone."""
        self._handles.pop(sandbox_id, None)
        return await AsyncSandbox.kill(sandbox_id, **self._opts)

    @translated
    async def pause(self, sandbox_id: str) -> bool:
        """Pause a sandbox; False if it was already paused."""
        self._handles.pop(sandbox_id, None)
        return await AsyncSandbox.pause(sandbox_id, **self._opts)

    @translated
    async def resume(self, sandbox_id: str, timeout: int) -> None:
        """Resume a paused sandbox (E2B's connect), giving it ``timeout`` seconds to live."""
        self._keep(await AsyncSandbox.connect(sandbox_id, timeout=timeout, **self._opts))

    @translated
    async def set_timeout(self, sandbox_id: str, timeout: int) -> None:
        """Let the sandbox live ``timeout`` seconds from now."""
        await AsyncSandbox.set_timeout(sandbox_id, timeout, **self._opts)

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
        sandbox is an outcome; only failing to reach the sandbox raises ``BackendError``."""
        sbx = await self._handle(sandbox_id)
        try:
            result = await sbx.commands.run(
                command,
                envs=envs,
                cwd=cwd,
                timeout=timeout,
                on_stdout=on_stdout,
                on_stderr=on_stderr,
            )
        except CommandExitException as exc:
            return CommandOutcome(exc.exit_code, _cut(exc.stdout), _cut(exc.stderr))
        except Exception as exc:  # the command did not complete: a failed outcome
            return CommandOutcome(-1, error=f"{type(exc).__name__}: {exc}"[:1024])
        return CommandOutcome(result.exit_code, _cut(result.stdout), _cut(result.stderr))

    @translated
    async def start(
        self, sandbox_id: str, command: str, *, envs: dict[str, str], cwd: str, log: str
    ) -> int:
        """Start a long-running command in the background, output to ``log``; return its PID."""
        sbx = await self._handle(sandbox_id)
        wrapped = f"exec >>{shlex.quote(log)} 2>&1; {command}"
        handle = await sbx.commands.run(wrapped, background=True, envs=envs, cwd=cwd, timeout=0)
        return handle.pid

    async def _handle(self, sandbox_id: str) -> AsyncSandbox:
        sbx = self._handles.get(sandbox_id)
        if sbx is None:
            try:
                sbx = await AsyncSandbox.connect(sandbox_id, **self._opts)
            except NotFoundException as exc:
                raise SandboxGone(sandbox_id) from exc
        self._keep(sbx)
        return sbx

    def _keep(self, sbx: AsyncSandbox) -> None:
        self._handles[sbx.sandbox_id] = sbx
        self._handles.move_to_end(sbx.sandbox_id)
        while len(self._handles) > HANDLE_CACHE:
            self._handles.popitem(last=False)


def _cut(text: Any) -> str:
    text = text or ""
    return text if len(text) <= OUTPUT_LIMIT else text[-OUTPUT_LIMIT:]
