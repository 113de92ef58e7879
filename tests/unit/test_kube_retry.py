"""A loop's pass the apiserver could not answer is retried soon; any other error is not ours."""

from __future__ import annotations

import asyncio

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from e2b_operator.handlers.kube import RETRY_MAX_SECONDS, KubeRetry


def run(retry: KubeRetry, outcome: float | BaseException) -> float:
    async def one_pass() -> float:
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return asyncio.run(retry.run(one_pass, "ns/name"))


def test_unanswered_passes_retry_within_the_cap_and_an_answer_resets() -> None:
    retry = KubeRetry()
    delays = [run(retry, ApiException(status=503)) for _ in range(6)]
    assert retry.failures == 6
    assert all(0 < d <= RETRY_MAX_SECONDS for d in delays)
    assert delays == sorted(delays) and delays[0] < delays[-1]
    assert run(retry, TimeoutError()) <= RETRY_MAX_SECONDS  # no answer at all
    assert run(retry, 42.0) == 42.0 and retry.failures == 0


def test_an_answer_that_is_an_error_is_raised() -> None:
    retry = KubeRetry()
    with pytest.raises(ApiException):
        run(retry, ApiException(status=404))
    with pytest.raises(ValueError):
        run(retry, ValueError("a bug"))
    assert retry.failures == 0
