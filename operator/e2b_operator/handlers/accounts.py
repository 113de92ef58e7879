"""One E2B account per credential in use: its sandbox backend (with its own pacer, as E2B
counts limits per team), its template builds and its shared listing.

An account is keyed by its connection's fingerprint (endpoint and key), so objects naming
different Secrets that hold the same key share one listing. An account's lister runs while a
deployment uses it, and always for the operator's default; an account nobody asked for in
LINGER_SECONDS is dropped with its lister (after a key of another team replaced it). An
operator whose own key cannot be used at start-up (its Secret missing, or not text) starts
anyway: objects naming their own credentials go on, the others report why, and the Secret
is read again every CACHE_SECONDS until it can be used.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..api import Credentials
from ..sandboxes.backend import SandboxBackend
from ..sandboxes.connection import Connection
from ..sandboxes.templates import TemplateBuilds
from .credentials import CACHE_SECONDS, CredentialError, CredentialStore
from .lister import SandboxLister

log = logging.getLogger(__name__)

LINGER_SECONDS = 120.0
REAP_EVERY_SECONDS = 10.0


@dataclass
class Account:
    """What the operator uses to act as one E2B account."""

    id: str
    """The connection's fingerprint (never the key)."""
    backend: SandboxBackend
    builds: TemplateBuilds
    lister: SandboxLister
    used_at: float = 0.0
    task: asyncio.Task[None] | None = None


class Accounts:
    """The accounts in use, made on first use by ``make``."""

    def __init__(
        self,
        store: CredentialStore,
        make: Callable[[Connection], Account],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.make = make
        self.clock = clock
        self.default_id = ""
        self._accounts: dict[str, Account] = {}
        self._users: dict[str, str] = {}
        self._reaped_at = clock()
        self._awaiting: asyncio.Task[None] | None = None

    async def start(self, usable: Callable[[], None]) -> Account:
        """The operator's default account. If its key cannot be used yet, an account that
        lists nothing, and a task that reads the key again until it can, then makes it the
        default and calls ``usable`` (to wake the objects that waited for it)."""
        try:
            return self.default(await self.store.default())
        except CredentialError:
            self._awaiting = asyncio.get_running_loop().create_task(self._await_default(usable))
            return self.account(self.store.base)

    async def _await_default(self, usable: Callable[[], None]) -> None:
        while True:
            await asyncio.sleep(CACHE_SECONDS)
            try:
                conn = await self.store.default()
            except CredentialError:
                continue
            if conn.fingerprint != self.default_id:  # an object may have got it first
                self.default(conn)
            usable()
            return

    async def resolve(
        self,
        namespace: str,
        credentials: Credentials | None,
        *,
        user: str | None = None,
        remembered: bool = False,
    ) -> Account:
        """The account of an object's credentials (CredentialError if they cannot be used).
        ``user``: a deployment, whose account keeps listing while it is used."""
        conn = await self.store.connection(namespace, credentials, remembered=remembered)
        if credentials is None and conn.fingerprint != self.default_id:
            self.default(conn)
        return self.account(conn, user=user)

    def default(self, conn: Connection) -> Account:
        """Make ``conn`` the operator's default account: always listed (orphan sweep)."""
        old, self.default_id = self.default_id, conn.fingerprint
        if old:
            log.info("the operator's default E2B account changed")
        account = self.account(conn)
        self._listen(account)
        return account

    def account(self, conn: Connection, *, user: str | None = None) -> Account:
        account = self._accounts.get(conn.fingerprint)
        if account is None:
            account = self._accounts[conn.fingerprint] = self.make(conn)
            log.info("using E2B account %s (%s)", account.id, conn)
        account.used_at = self.clock()
        if user is not None:
            self._users[user] = account.id
            self._listen(account)
        self._reap()
        return account

    def release(self, user: str) -> None:
        """A deployment is gone: its account may stop listing."""
        self._users.pop(user, None)

    def all(self) -> list[Account]:
        """Every account in use (a copy: safe to read from another thread)."""
        return list(self._accounts.values())

    def listing(self) -> list[Account]:
        """The accounts whose sandboxes are being listed (the ones the orphan sweep covers)."""
        return [a for a in self._accounts.values() if a.task is not None]

    def _listen(self, account: Account) -> None:
        if account.task is None:
            account.task = asyncio.get_running_loop().create_task(account.lister.run())

    def _reap(self) -> None:
        now = self.clock()
        if now - self._reaped_at < REAP_EVERY_SECONDS:
            return
        self._reaped_at = now
        used = set(self._users.values()) | {self.default_id}
        for account in list(self._accounts.values()):
            if account.id not in used and now - account.used_at > LINGER_SECONDS:
                del self._accounts[account.id]
                if account.task is not None:
                    account.task.cancel()
                log.info("stopped using E2B account %s", account.id)

    async def close(self) -> None:
        tasks = [a.task for a in self._accounts.values() if a.task is not None]
        tasks += [self._awaiting] if self._awaiting is not None else []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
