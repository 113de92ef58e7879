"""Operator settings from the environment: where E2B is and where its API key lives."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from ..sandboxes.connection import Connection
from ..sandboxes.ratelimit import PRESETS, Endpoint

API_KEY_SECRET_KEY = "apiKey"
RATE_PRESET = "pro"
"""E2B's Pro limits unless told otherwise: on Hobby the first 429s slow the pacer to 1/s
within a second (a few retried creates), while a Hobby default would hold Pro teams at a
fifth of their rate for good."""


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
    list_max_period_seconds: float = 5.0
    """A failed listing is retried at least this often: it is the probe that notices E2B is
    back after an outage (and wakes every waiting deployment)."""
    rates: dict[Endpoint, float] = field(default_factory=lambda: dict(PRESETS[RATE_PRESET]))
    """E2B calls per second by endpoint class (inf: unlimited)."""
    metrics_port: int = 9090
    """Port of /metrics; 0 serves none."""
    metrics_address: str = "0.0.0.0"

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            orphan_sweep_seconds=_float("E2B_OPERATOR_ORPHAN_SWEEP_SECONDS", 60.0),
            orphan_grace_seconds=_float("E2B_OPERATOR_ORPHAN_GRACE_SECONDS", 120.0),
            create_batch_max=int(_float("E2B_OPERATOR_CREATE_BATCH_MAX", 32)),
            error_backoff_max_seconds=_float("E2B_OPERATOR_ERROR_BACKOFF_MAX_SECONDS", 60.0),
            list_period_seconds=_float("E2B_OPERATOR_LIST_PERIOD_SECONDS", 1.0),
            rates=rates_from_env(),
            metrics_port=_port("E2B_OPERATOR_METRICS_PORT", 9090),
            metrics_address=os.environ.get("E2B_OPERATOR_METRICS_ADDRESS") or "0.0.0.0",
        )


def rates_from_env() -> dict[Endpoint, float]:
    """E2B_OPERATOR_RATE_PRESET (pro, hobby, unlimited), then per endpoint class
    E2B_OPERATOR_RATE_<CREATE|LIST|CONNECT|KILL|PAUSE>_PER_S (a number > 0, or inf)."""
    preset = os.environ.get("E2B_OPERATOR_RATE_PRESET") or RATE_PRESET
    if preset not in PRESETS:
        raise SettingsError(
            f"E2B_OPERATOR_RATE_PRESET={preset!r}: expected one of {', '.join(PRESETS)}"
        )
    rates = dict(PRESETS[preset])
    for endpoint in Endpoint:
        name = f"E2B_OPERATOR_RATE_{endpoint.name}_PER_S"
        rate = _float(name, rates[endpoint])
        if not rate > 0 or math.isnan(rate):
            raise SettingsError(f"{name}={rate!r}: expected calls per second > 0, or inf")
        rates[endpoint] = rate
    return rates


@dataclass(frozen=True)
class SecretKeyRef:
    """Where a key lives: Secret namespace/name and key."""

    namespace: str
    name: str
    key: str


def default_key_secret() -> SecretKeyRef | None:
    """The Secret holding the operator's own API key: E2B_API_KEY_SECRET (``namespace/name``)
    and E2B_API_KEY_SECRET_KEY (default ``apiKey``); None when the key is given directly."""
    ref = os.environ.get("E2B_API_KEY_SECRET")
    if not ref:
        return None
    namespace, _, name = ref.partition("/")
    if not (namespace and name):
        raise SettingsError(f"E2B_API_KEY_SECRET={ref!r}: expected namespace/name")
    return SecretKeyRef(
        namespace, name, os.environ.get("E2B_API_KEY_SECRET_KEY", API_KEY_SECRET_KEY)
    )


def connection_from_env() -> Connection:
    """E2B cloud by default; E2B_API_URL / E2B_SANDBOX_URL / E2B_DOMAIN select another endpoint.

    The key comes from E2B_API_KEY, or from the Secret named by E2B_API_KEY_SECRET
    (``namespace/name``, key ``apiKey`` unless E2B_API_KEY_SECRET_KEY says otherwise), which
    the CredentialStore reads (and re-reads): here its key is E2B_API_KEY or empty.
    """
    key = os.environ.get("E2B_API_KEY") or ""
    if not key and default_key_secret() is None:
        raise SettingsError("no E2B API key: set E2B_API_KEY or E2B_API_KEY_SECRET=namespace/name")
    return Connection(
        api_key=key,
        api_url=os.environ.get("E2B_API_URL") or None,
        sandbox_url=os.environ.get("E2B_SANDBOX_URL") or None,
        domain=os.environ.get("E2B_DOMAIN") or None,
        request_timeout=_float("E2B_REQUEST_TIMEOUT", 30.0),
        retries=int(_float("E2B_RETRIES", 1)),
        create_timeout=_float("E2B_CREATE_TIMEOUT", 10.0),
    )


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is not a number") from exc


def _port(name: str, default: int) -> int:
    raw = os.environ.get(name) or str(default)
    if not raw.isdigit() or int(raw) > 65535:
        raise SettingsError(f"{name}={raw!r} is not a port number (0-65535; 0 turns it off)")
    return int(raw)
