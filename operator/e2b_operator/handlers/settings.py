"""Operator settings from the environment: where E2B is and where its API key lives."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..sandboxes.connection import Connection
from .kube import Kube

API_KEY_SECRET_KEY = "apiKey"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    """Tunables of one operator process."""

    orphan_sweep_seconds: float = 60.0
    orphan_grace_seconds: float = 120.0
    create_batch_max: int = 32
    cleanup_timeout_seconds: float = 10.0
    error_backoff_max_seconds: float = 60.0
    list_period_seconds: float = 1.0
    list_max_period_seconds: float = 30.0

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            orphan_sweep_seconds=_float("E2B_OPERATOR_ORPHAN_SWEEP_SECONDS", 60.0),
            orphan_grace_seconds=_float("E2B_OPERATOR_ORPHAN_GRACE_SECONDS", 120.0),
            create_batch_max=int(_float("E2B_OPERATOR_CREATE_BATCH_MAX", 32)),
            list_period_seconds=_float("E2B_OPERATOR_LIST_PERIOD_SECONDS", 1.0),
        )


async def connection_from_env(kube: Kube) -> Connection:
    """E2B cloud by default; E2B_API_URL / E2B_SANDBOX_URL / E2B_DOMAIN select another endpoint.

    The key comes from E2B_API_KEY, or from the Secret named by E2B_API_KEY_SECRET
    (``namespace/name``, key ``apiKey`` unless E2B_API_KEY_SECRET_KEY says otherwise).
    """
    key = os.environ.get("E2B_API_KEY")
    ref = os.environ.get("E2B_API_KEY_SECRET")
    if ref:
        namespace, _, name = ref.partition("/")
        if not (namespace and name):
            raise SettingsError(f"E2B_API_KEY_SECRET={ref!r}: expected namespace/name")
        key = await kube.secret_value(
            namespace, name, os.environ.get("E2B_API_KEY_SECRET_KEY", API_KEY_SECRET_KEY)
        )
    if not key:
        raise SettingsError("no E2B API key: set E2B_API_KEY or E2B_API_KEY_SECRET=namespace/name")
    return Connection(
        api_key=key,
        api_url=os.environ.get("E2B_API_URL") or None,
        sandbox_url=os.environ.get("E2B_SANDBOX_URL") or None,
        domain=os.environ.get("E2B_DOMAIN") or None,
        request_timeout=_float("E2B_REQUEST_TIMEOUT", 30.0),
        retries=int(_float("E2B_RETRIES", 1)),
    )


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is not a number") from exc
