"""Leader election on a Kubernetes Lease: of several operator processes only one acts.

A process with ``E2B_OPERATOR_LEASE`` set waits in kopf's startup handler until it holds the
Lease, so a standby starts no watch, daemon or sweep at all. The leader renews the Lease every
``retry`` seconds; a watchdog thread (independent of the event loop) ends the process if no
renewal succeeded for ``renew_deadline`` seconds, which is shorter than the ``duration`` a
standby waits, measured from when it last saw the Lease change, before it takes the Lease over.
So the old leader is gone before a new one can start. A leader that stops cleanly (SIGTERM)
releases the Lease once kopf has stopped every daemon, and a standby takes over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from .settings import SettingsError, _float

log = logging.getLogger(__name__)

LOST_EXIT_CODE = 3
"""Exit status of a leader that could not renew its Lease (its Deployment restarts it)."""


@dataclass(frozen=True)
class LeaseSettings:
    """Where the Lease is and how long it lasts (``E2B_OPERATOR_LEASE*``)."""

    namespace: str
    name: str
    identity: str
    duration: float = 12.0
    renew_deadline: float = 8.0
    retry: float = 2.0
    standby_health: tuple[str, int] | None = None

    @classmethod
    def from_env(cls) -> LeaseSettings | None:
        """None unless E2B_OPERATOR_LEASE names a Lease (``namespace/name``)."""
        ref = os.environ.get("E2B_OPERATOR_LEASE", "")
        if not ref:
            return None
        namespace, _, name = ref.partition("/")
        if not (namespace and name):
            raise SettingsError(f"E2B_OPERATOR_LEASE={ref!r}: expected namespace/name")
        settings = cls(
            namespace=namespace,
            name=name,
            identity=os.environ.get("E2B_OPERATOR_IDENTITY") or _default_identity(),
            duration=_float("E2B_OPERATOR_LEASE_DURATION_SECONDS", cls.duration),
            renew_deadline=_float("E2B_OPERATOR_LEASE_RENEW_DEADLINE_SECONDS", cls.renew_deadline),
            retry=_float("E2B_OPERATOR_LEASE_RETRY_SECONDS", cls.retry),
            standby_health=_address(os.environ.get("E2B_OPERATOR_STANDBY_HEALTH", "")),
        )
        if not 0 < settings.retry < settings.renew_deadline < settings.duration:
            raise SettingsError(
                "E2B_OPERATOR_LEASE_RETRY_SECONDS < E2B_OPERATOR_LEASE_RENEW_DEADLINE_SECONDS < "
                "E2B_OPERATOR_LEASE_DURATION_SECONDS must hold (got "
                f"{settings.retry:g} < {settings.renew_deadline:g} < {settings.duration:g})"
            )
        return settings


def _default_identity() -> str:
    """The pod's name (its hostname) and the PID: unique per process, readable in the Lease."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _address(raw: str) -> tuple[str, int] | None:
    if not raw:
        return None
    host, _, port = raw.rpartition(":")
    if not port.isdigit():
        raise SettingsError(f"E2B_OPERATOR_STANDBY_HEALTH={raw!r}: expected host:port")
    return host or "0.0.0.0", int(port)


@dataclass(frozen=True)
class Seen:
    """The Lease as a standby last saw it, and when (its own monotonic clock)."""

    holder: str | None
    version: str
    duration: float
    since: float


def observe(previous: Seen | None, *, holder: str | None, version: str, duration: float) -> Seen:
    """The observation after a read: ``since`` moves only when the Lease changed."""
    if previous is not None and previous.version == version:
        return previous
    return Seen(holder, version, duration, time.monotonic())


def may_take(seen: Seen, identity: str, now: float) -> bool:
    """Free, ours, or not renewed for a whole duration as we observed it (clocks of other
    machines are never compared)."""
    return not seen.holder or seen.holder == identity or now - seen.since >= seen.duration


def _micro_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Acquire, renew and release one Lease for this process."""

    def __init__(
        self,
        api: client.ApiClient,
        settings: LeaseSettings,
        *,
        on_lost: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.leases = client.CoordinationV1Api(api)
        self.on_lost = on_lost or _exit_lost
        self.renewed_at: float | None = None
        """time.monotonic() when the latest successful renewal was sent; None unless leading."""
        self.transitions = 0
        self._version = ""
        self._polled_at = time.monotonic()
        self._renewer: asyncio.Task[None] | None = None
        self._watchdog_stop = threading.Event()

    # -- standing by ---------------------------------------------------------------------------

    async def acquire(self) -> None:
        """Return once this process holds the Lease; renewal and the watchdog then run."""
        s = self.settings
        health = await self._serve_standby_health()
        try:
            seen: Seen | None = None
            told = None
            while True:
                self._polled_at = time.monotonic()
                try:
                    seen = await self._try_acquire(seen)
                except ApiException as exc:
                    log.warning("lease %s/%s: %s %s", s.namespace, s.name, exc.status, exc.reason)
                except Exception as exc:  # the apiserver away: keep standing by
                    log.warning("lease %s/%s: %r", s.namespace, s.name, exc)
                if self.renewed_at is not None:
                    break
                if seen is not None and seen.holder != told:
                    told = seen.holder
                    log.info("standing by: lease %s/%s is held by %s", s.namespace, s.name, told)
                await asyncio.sleep(s.retry)
        finally:
            if health is not None:
                health.close()
                await health.wait_closed()
        log.info(
            "leading: %s holds lease %s/%s (transition %d)",
            s.identity,
            s.namespace,
            s.name,
            self.transitions,
        )
        self._renewer = asyncio.create_task(self._renew_forever())
        threading.Thread(target=self._watchdog, name="lease-watchdog", daemon=True).start()

    async def _try_acquire(self, seen: Seen | None) -> Seen | None:
        s = self.settings
        sent = time.monotonic()
        try:
            lease = await self.leases.read_namespaced_lease(
                s.name, s.namespace, _request_timeout=s.retry
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = self._body(transitions=0, acquired=True)
            with contextlib.suppress(_Conflict):
                await self._write(
                    self.leases.create_namespaced_lease(
                        s.namespace, body, _request_timeout=s.retry
                    ),
                    sent,
                )
            return None
        spec = lease.spec
        seen = observe(
            seen,
            holder=spec.holder_identity,
            version=lease.metadata.resource_version,
            duration=float(spec.lease_duration_seconds or s.duration),
        )
        if not may_take(seen, s.identity, time.monotonic()):
            return seen
        transitions = (spec.lease_transitions or 0) + (spec.holder_identity != s.identity)
        body = self._body(transitions=transitions, acquired=True, version=seen.version)
        with contextlib.suppress(_Conflict):
            await self._write(
                self.leases.replace_namespaced_lease(
                    s.name, s.namespace, body, _request_timeout=s.retry
                ),
                sent,
            )
        return seen

    async def _serve_standby_health(self) -> asyncio.Server | None:
        """While standing by, answer the liveness probe that kopf serves once leading."""
        if self.settings.standby_health is None:
            return None
        host, port = self.settings.standby_health
        try:
            return await asyncio.start_server(self._answer_health, host, port)
        except OSError as exc:
            log.warning("standby health endpoint %s:%d: %s", host, port, exc)
            return None

    async def _answer_health(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            await reader.readuntil(b"\r\n\r\n")
            fresh = time.monotonic() - self._polled_at < 3 * self.settings.retry + 10
            status = b"200 OK" if fresh else b"503 Service Unavailable"
            body = b'{"standby": true}'
            writer.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body
            )
            await writer.drain()
        writer.close()

    # -- leading ---------------------------------------------------------------------------------

    async def _renew_forever(self) -> None:
        s = self.settings
        while True:
            await asyncio.sleep(s.retry)
            sent = time.monotonic()
            # A slow apiserver or a busy event loop may take seconds to answer: wait for as
            # long as the renew deadline allows, not just the retry period.
            renewed = self.renewed_at if self.renewed_at is not None else sent
            budget = max(1.0, s.renew_deadline - (sent - renewed))
            try:
                body = self._body(transitions=self.transitions, version=self._version)
                try:
                    await self._write(
                        self.leases.replace_namespaced_lease(
                            s.name, s.namespace, body, _request_timeout=budget
                        ),
                        sent,
                    )
                except _Conflict:
                    await self._after_conflict()
            except Exception as exc:  # retried; the watchdog ends us at the renew deadline
                log.warning("renewing lease %s/%s failed: %r", s.namespace, s.name, exc)

    async def _after_conflict(self) -> None:
        """Someone else wrote the Lease: still ours (a retried write) or lost."""
        s = self.settings
        lease = await self.leases.read_namespaced_lease(
            s.name, s.namespace, _request_timeout=s.retry
        )
        if lease.spec.holder_identity != s.identity:
            self.on_lost(
                f"lease {s.namespace}/{s.name} is now held by {lease.spec.holder_identity}"
            )
        self._version = lease.metadata.resource_version

    def _watchdog(self) -> None:
        while not self._watchdog_stop.wait(0.1):
            renewed = self.renewed_at
            if renewed is not None and time.monotonic() - renewed > self.settings.renew_deadline:
                self.on_lost(
                    f"lease {self.settings.namespace}/{self.settings.name} not renewed for "
                    f"{time.monotonic() - renewed:.1f}s (renew deadline "
                    f"{self.settings.renew_deadline:g}s)"
                )
                return

    async def release(self) -> None:
        """Give the Lease up (after kopf stopped every daemon) so a standby takes over now."""
        s = self.settings
        self._watchdog_stop.set()
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        if self.renewed_at is None:
            return
        self.renewed_at = None
        body = self._body(transitions=self.transitions, version=self._version, holder=None)
        body["spec"]["leaseDurationSeconds"] = 1
        try:
            await self.leases.replace_namespaced_lease(
                s.name, s.namespace, body, _request_timeout=s.retry
            )
            log.info("released lease %s/%s", s.namespace, s.name)
        except Exception as exc:
            log.warning(
                "releasing lease %s/%s failed (it expires on its own): %s", s.namespace, s.name, exc
            )

    # -- the Lease -------------------------------------------------------------------------------

    def _body(
        self,
        *,
        transitions: int,
        version: str = "",
        acquired: bool = False,
        holder: str | None = "",
    ) -> Any:  # a V1Lease as JSON, which the client sends as it is
        s = self.settings
        now = _micro_time()
        spec: dict[str, Any] = {
            "holderIdentity": s.identity if holder == "" else holder,
            "leaseDurationSeconds": max(1, round(s.duration)),
            "leaseTransitions": transitions,
            "renewTime": now,
        }
        if acquired:
            spec["acquireTime"] = now
        metadata: dict[str, Any] = {"name": s.name, "namespace": s.namespace}
        if version:
            metadata["resourceVersion"] = version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": spec,
        }

    async def _write(self, call: Any, sent: float) -> None:
        """Send a create or replace; on success we lead from ``sent`` on. 409 -> _Conflict."""
        try:
            lease = await call
        except ApiException as exc:
            if exc.status == 409:
                raise _Conflict from exc
            raise
        self._version = lease.metadata.resource_version
        self.transitions = lease.spec.lease_transitions or 0
        self.renewed_at = sent


class _Conflict(Exception):
    """The Lease changed since we read it (HTTP 409)."""


def _exit_lost(reason: str) -> None:
    """Stop acting at once: no await, no cleanup that could still act; the pod restarts as a
    standby. The sandboxes are found again by whoever leads next."""
    log.critical("lost leadership, exiting: %s", reason)
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    os._exit(LOST_EXIT_CODE)


async def elect(api: client.ApiClient) -> LeaderElector | None:
    """Block until this process leads, if E2B_OPERATOR_LEASE asks for an election."""
    settings = LeaseSettings.from_env()
    if settings is None:
        return None
    elector = LeaderElector(api, settings)
    await elector.acquire()
    return elector
