"""Authentication (TokenReview) and authorization (SubjectAccessReview) of callers.

The gateway asks the apiserver, with its own credentials, who a bearer token belongs to and
whether that user may do each verb on each e2b.dev resource in the request's namespace, as
the equivalent kubectl calls would need. Answers are reused for a few seconds per token.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from e2b_operator.api import GROUP

from .clients import token_key
from .errors import ApiProblem


@dataclass(frozen=True)
class Caller:
    """An authenticated user; the token is kept out of repr (and so out of logs)."""

    username: str
    uid: str
    groups: tuple[str, ...]
    extra: dict[str, list[str]] = field(default_factory=dict, compare=False)
    token: str = field(default="", repr=False, compare=False)


@dataclass(frozen=True)
class Permission:
    """One verb on one e2b.dev resource."""

    verb: str
    resource: str

    def __str__(self) -> str:
        return f"{self.verb} {self.resource}.{GROUP}"


class Reviews:
    """TokenReviews and SubjectAccessReviews through the gateway's own client, cached."""

    def __init__(self, api: client.ApiClient, cache_seconds: float = 10.0) -> None:
        self.authn = client.AuthenticationV1Api(api)
        self.authz = client.AuthorizationV1Api(api)
        self.cache_seconds = cache_seconds
        self._cache: dict[tuple[Any, ...], tuple[float, Any]] = {}

    async def authenticate(self, token: str) -> Caller:
        """The token's user; 401 when the apiserver does not accept the token."""
        key = ("authn", token_key(token))
        caller = self._cached(key)
        if caller is None:
            review = client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token))
            answer = await self._ask(self.authn.create_token_review(review))
            status = answer.status
            if not status or not status.authenticated or not status.user:
                raise ApiProblem(
                    401,
                    "Unauthorized",
                    "the bearer token was not accepted by the Kubernetes API"
                    f"{': ' + status.error if status and status.error else ''}",
                    headers={"WWW-Authenticate": 'Bearer realm="kubernetes"'},
                )
            user = status.user
            caller = Caller(
                username=user.username or "",
                uid=user.uid or "",
                groups=tuple(user.groups or ()),
                extra=dict(user.extra or {}),
                token=token,
            )
            self._store(key, caller)
        return caller

    async def authorize(self, caller: Caller, namespace: str, *needs: Permission) -> None:
        """403 naming the first verb, resource and namespace the caller may not use."""
        answers = await asyncio.gather(*(self._allowed(caller, namespace, p) for p in needs))
        for need, allowed in zip(needs, answers, strict=True):
            if not allowed:
                raise ApiProblem(
                    403,
                    "Forbidden",
                    f'user "{caller.username}" cannot {need.verb} resource'
                    f' "{need.resource}" in API group "{GROUP}" in namespace "{namespace}"',
                    verb=need.verb,
                    resource=f"{need.resource}.{GROUP}",
                    namespace=namespace,
                )

    async def _allowed(self, caller: Caller, namespace: str, need: Permission) -> bool:
        key = ("authz", token_key(caller.token), namespace, need.verb, need.resource)
        allowed = self._cached(key)
        if allowed is None:
            review = client.V1SubjectAccessReview(
                spec=client.V1SubjectAccessReviewSpec(
                    user=caller.username,
                    uid=caller.uid or None,
                    groups=list(caller.groups),
                    extra=caller.extra or None,
                    resource_attributes=client.V1ResourceAttributes(
                        group=GROUP, resource=need.resource, verb=need.verb, namespace=namespace
                    ),
                )
            )
            answer = await self._ask(self.authz.create_subject_access_review(review))
            allowed = bool(answer.status and answer.status.allowed)
            self._store(key, allowed)
        return allowed

    async def _ask(self, call: Any) -> Any:
        try:
            return await call
        except ApiException as exc:
            raise ApiProblem(
                503,
                "ReviewFailed",
                f"the Kubernetes API could not review the request (HTTP {exc.status});"
                " check the gateway's RBAC for tokenreviews and subjectaccessreviews",
            ) from exc

    def _cached(self, key: tuple[Any, ...]) -> Any:
        hit = self._cache.get(key)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        return None

    def _store(self, key: tuple[Any, ...], value: Any) -> None:
        now = time.monotonic()
        if len(self._cache) > 4096:
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
        self._cache[key] = (now + self.cache_seconds, value)
