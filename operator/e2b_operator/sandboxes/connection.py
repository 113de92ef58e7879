"""How the operator reaches E2B: cloud by default, any E2B-compatible endpoint by settings."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Connection:
    """SDK connection parameters. ``repr`` never shows the key."""

    api_key: str
    api_url: str | None = None
    sandbox_url: str | None = None
    domain: str | None = None
    request_timeout: float = 30.0
    retries: int = 1
    create_timeout: float = 10.0
    """How long one create waits for E2B's answer before it is sent again with the same
    idempotency key (the same sandbox, if the first reached E2B)."""

    def __repr__(self) -> str:
        return f"Connection(api_url={self.api_url!r}, domain={self.domain!r}, api_key=<hidden>)"

    @property
    def fingerprint(self) -> str:
        """Which E2B account this connection acts as: a truncated hash of the endpoint and
        the key (equal for equal credentials, and never the key itself)."""
        parts = (self.api_url or "", self.sandbox_url or "", self.domain or "", self.api_key)
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]

    def params(self) -> dict[str, Any]:
        """Keyword arguments for every SDK call (the SDK's ``ApiParams``)."""
        opts: dict[str, Any] = {
            "api_key": self.api_key,
            "request_timeout": self.request_timeout,
            "retries": self.retries,
        }
        for key in ("api_url", "sandbox_url", "domain"):
            if getattr(self, key):
                opts[key] = getattr(self, key)
        return opts
