"""Calls to the apiserver know a failure to answer from an answer, and the first answer
after failures wakes whoever waits for it."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from e2b_operator.handlers.kube import Kube, unavailable


@pytest.mark.parametrize(
    ("exc", "passing"),
    [
        (aiohttp.ServerDisconnectedError(), True),
        (TimeoutError(), True),
        (ConnectionRefusedError(), True),
        (ApiException(status=503), True),
        (ApiException(status=429), True),
        (ApiException(status=404), False),
        (ApiException(status=403), False),
        (ValueError("a bug"), False),
    ],
)
def test_unavailable_tells_a_passing_outage_from_an_answer(exc: Exception, passing: bool) -> None:
    assert unavailable(exc) is passing


async def test_the_first_answer_after_failures_calls_back_once() -> None:
    api = client.ApiClient()
    kube = Kube(api)
    woken: list[int] = []
    kube.on_recovered(lambda: woken.append(1))
    outcomes: list[Any] = [
        aiohttp.ServerDisconnectedError(),
        ApiException(status=500),
        ApiException(status=404),  # an answer: the apiserver is back
        {"metadata": {}},
        ApiException(status=503),
        {"metadata": {}},
    ]

    async def answer(*_: Any, **__: Any) -> Any:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    kube.custom.get_namespaced_custom_object = answer  # type: ignore[method-assign]
    seen = []
    for _ in range(6):
        try:
            seen.append(await kube.get("e2bdeployments", "ns", "name"))
        except Exception as exc:
            seen.append(type(exc).__name__)
        seen.append(len(woken))
    assert seen == [
        "ServerDisconnectedError",
        0,
        "ApiException",
        0,
        None,  # 404: no such object
        1,
        {"metadata": {}},
        1,
        "ApiException",
        1,
        {"metadata": {}},
        2,
    ]
    await api.close()
