"""The E2B connection an object acts with: the operator's own, or its spec.credentials Secret.

A Secret is read by name in the object's own namespace (GET, never list or watch, never
another namespace) and kept CACHE_SECONDS, so a changed key is used from the next E2B call
after that, without a restart. A bad Secret is a CredentialError naming the spec field and the
fix; the key itself never appears in messages, logs or status.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from ..api import Credentials
from ..sandboxes.connection import Connection
from .kube import Kube, SecretForbidden, SecretMissing
from .settings import SecretKeyRef

log = logging.getLogger(__name__)

CACHE_SECONDS = 3.0
FIELD = "spec.credentials.secretRef"
DEFAULT_FIELD = "E2B_API_KEY_SECRET"
"""Where the operator's own key is named (an environment variable of its Deployment)."""
HOSTNAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]{1,5})?$")


class CredentialError(Exception):
    """The object's credentials cannot be used; ``message`` names the field and the fix."""

    def __init__(self, reason: str, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.transient = transient


@dataclass
class _Cached:
    at: float
    data: dict[str, bytes] | None  # None: the Secret does not exist


class CredentialStore:
    """Resolves credentials to connections, with a short cache of the Secrets it reads."""

    def __init__(
        self,
        kube: Kube,
        default: Connection,
        default_secret: SecretKeyRef | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.base = default
        """The operator's own connection: endpoint settings and the key read at start-up."""
        self.default_secret = default_secret
        self.clock = clock
        self._cache: dict[tuple[str, str], _Cached] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._last_good: dict[tuple[str, str], Connection] = {}
        self._default_problem: str | None = None

    async def connection(
        self, namespace: str, credentials: Credentials | None, *, remembered: bool = False
    ) -> Connection:
        """The connection for an object of ``namespace`` naming ``credentials`` (None: the
        operator's own). ``remembered``: if the Secret cannot be used now, the connection it
        last gave (for clean-up after the Secret went first, as in a namespace deletion)."""
        if credentials is None:
            return await self.default()
        ref = credentials.secret_ref
        memo = (namespace, ref.model_dump_json())
        try:
            conn = await self._from_secret(namespace, credentials)
        except CredentialError:
            if remembered and memo in self._last_good:
                return self._last_good[memo]
            raise
        self._last_good[memo] = conn
        return conn

    async def default(self) -> Connection:
        """The operator's own connection, its key re-read from E2B_API_KEY_SECRET (if set);
        while that Secret cannot be used, the key it last held, or CredentialError if it
        never held a usable one (the objects that use it say why; the others go on)."""
        ref = self.default_secret
        if ref is None:
            return self.base
        try:
            key = await self._default_key(ref)
            error = None
        except CredentialError as exc:
            key, error = None, exc
        self._report_default(ref, error)
        if key is None:
            if error is None or self.base.api_key:
                return self.base
            raise error
        if key != self.base.api_key:
            if self.base.api_key:  # not at start-up, when there is none yet
                log.info(
                    "the operator's E2B API key changed in Secret %s/%s", ref.namespace, ref.name
                )
            self.base = replace(self.base, api_key=key)
        return self.base

    async def _default_key(self, ref: SecretKeyRef) -> str:
        where = f"{DEFAULT_FIELD}: Secret {ref.namespace}/{ref.name}"
        data = await self._secret(ref.namespace, ref.name, field=DEFAULT_FIELD)
        if data is None:
            raise CredentialError(
                "SecretNotFound",
                f"{where} does not exist; create it with the operator's E2B API key under key "
                f"{ref.key!r}, or point {DEFAULT_FIELD} at the Secret that holds it",
            )
        key = _text(data, ref.key, where)
        if key is None:
            raise CredentialError(
                "InvalidCredentials",
                f"{where} has no key {ref.key!r}; add the operator's E2B API key under it, or "
                "set E2B_API_KEY_SECRET_KEY to the key that holds it",
            )
        return key

    def _report_default(self, ref: SecretKeyRef, error: CredentialError | None) -> None:
        """Log each change of the default key's problem once."""
        problem = error.message if error else None
        if problem == self._default_problem:
            return
        before, self._default_problem = self._default_problem, problem
        if error is None:
            if before is not None:
                log.info(
                    "the operator's E2B API key in Secret %s/%s is usable", ref.namespace, ref.name
                )
        elif self.base.api_key:
            log.warning("keeping the operator's previous E2B API key: %s", problem)
        elif not error.transient:
            log.error(
                "the operator's E2B API key cannot be used: %s. Objects without "
                "spec.credentials are Stalled (%s) until it is fixed; no restart is needed",
                problem,
                error.reason,
            )

    async def _from_secret(self, namespace: str, credentials: Credentials) -> Connection:
        ref = credentials.secret_ref
        data = await self._secret(namespace, ref.name)
        where = f"Secret {namespace}/{ref.name}"
        if data is None:
            raise CredentialError(
                "SecretNotFound",
                f"{FIELD}.name: {where} does not exist; create it with the E2B API key under "
                f"key {ref.api_key_key!r}, or fix {FIELD}.name",
            )
        key = _text(data, ref.api_key_key, where, field=f"{FIELD}.apiKeyKey")
        if key is None:
            raise CredentialError(
                "InvalidCredentials",
                f"{FIELD}.apiKeyKey: {where} has no key {ref.api_key_key!r}; add the E2B API "
                f"key under it, or set {FIELD}.apiKeyKey to the key that holds it",
            )
        api_url = _text(data, ref.api_url_key, where, field=f"{FIELD}.apiUrlKey")
        sandbox_url = _text(data, ref.sandbox_url_key, where, field=f"{FIELD}.sandboxUrlKey")
        domain = _text(data, ref.domain_key, where, field=f"{FIELD}.domainKey")
        for value, key_name, field in (
            (api_url, ref.api_url_key, "apiUrlKey"),
            (sandbox_url, ref.sandbox_url_key, "sandboxUrlKey"),
        ):
            if value is not None and not re.match(r"^https?://[^\s/]+", value):
                raise CredentialError(
                    "InvalidCredentials",
                    f"{FIELD}.{field}: {where} key {key_name!r} is not an http(s) URL; "
                    "store e.g. https://api.e2b.app",
                )
        if domain is not None and not HOSTNAME.match(domain):
            raise CredentialError(
                "InvalidCredentials",
                f"{FIELD}.domainKey: {where} key {ref.domain_key!r} is not a domain name; "
                "store e.g. e2b.app (no scheme, no path)",
            )
        if api_url is None and sandbox_url is None and domain is None:
            return replace(self.base, api_key=key)  # same endpoint, another account
        return replace(
            self.base, api_key=key, api_url=api_url, sandbox_url=sandbox_url, domain=domain
        )

    async def _secret(
        self, namespace: str, name: str, *, field: str = f"{FIELD}.name"
    ) -> dict[str, bytes] | None:
        """The Secret's data (None if it does not exist), at most CACHE_SECONDS old."""
        slot = (namespace, name)
        lock = self._locks.setdefault(slot, asyncio.Lock())
        async with lock:  # one read per Secret however many loops ask at once
            cached = self._cache.get(slot)
            if cached is not None and self.clock() - cached.at < CACHE_SECONDS:
                return cached.data
            try:
                data: dict[str, bytes] | None = await self.kube.read_secret(namespace, name)
            except SecretMissing:
                data = None
            except SecretForbidden as exc:
                raise CredentialError(
                    "SecretForbidden",
                    f"{field}: the operator may not read Secret {namespace}/{name} "
                    f"({exc}); grant its ServiceAccount get on secrets (manifests/install)",
                ) from exc
            except Exception as exc:  # the apiserver failed: try again soon
                raise CredentialError(
                    "SecretUnreadable",
                    f"{field}: reading Secret {namespace}/{name} failed ({type(exc).__name__}); "
                    "retrying",
                    transient=True,
                ) from exc
            self._cache[slot] = _Cached(self.clock(), data)
            return data


def _text(data: dict[str, bytes] | None, key: str, where: str, *, field: str = "") -> str | None:
    """A key's value as text (None when absent); CredentialError when it is not UTF-8 or
    blank. Messages name the key, never its value."""
    raw = (data or {}).get(key)
    if raw is None:
        return None
    prefix = f"{field}: " if field else ""
    try:
        text = raw.decode().strip()
    except UnicodeDecodeError as exc:
        raise CredentialError(
            "SecretNotText",
            f"{prefix}{where} key {key!r} is not UTF-8 text; store the value as plain text "
            "(stringData, or base64 of the text in data)",
        ) from exc
    if not text:
        raise CredentialError(
            "InvalidCredentials", f"{prefix}{where} key {key!r} is empty; store the value in it"
        )
    return text
