"""The gateway's settings, from its environment."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    """kubeconfig: the gateway's own credentials (None: $KUBECONFIG or in-cluster);
    namespace: used when a request has no ?namespace=; review_cache_seconds: how long a
    TokenReview or SubjectAccessReview answer is reused for the same token."""

    kubeconfig: str | None = None
    namespace: str = "default"
    review_cache_seconds: float = 10.0

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            kubeconfig=os.environ.get("E2B_GATEWAY_KUBECONFIG") or None,
            namespace=os.environ.get("E2B_GATEWAY_NAMESPACE") or "default",
            review_cache_seconds=float(os.environ.get("E2B_GATEWAY_REVIEW_CACHE_SECONDS", "10")),
        )
