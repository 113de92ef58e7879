"""The operator's metrics: E2B call outcomes, per-deployment series and their removal."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from e2b import exceptions as e2b_exc
from prometheus_client import REGISTRY

from e2b_operator import metrics
from e2b_operator.api import E2BDeploymentStatus, E2BTemplateStatus
from e2b_operator.handlers.settings import Settings, SettingsError
from e2b_operator.sandboxes.errors import BackendError, SandboxGone, outcome, translated


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (e2b_exc.RateLimitException("429: slow down"), "429"),
        (e2b_exc.ServiceBusyException("503: busy"), "503"),
        (e2b_exc.AuthenticationException("bad key"), "401"),
        (e2b_exc.SandboxException("500: boom", status_code=500), "500"),
        (e2b_exc.TimeoutException("slow"), "timeout"),
        (httpx.ConnectError("refused"), "unreachable"),
        (asyncio.CancelledError(), "cancelled"),
        (ValueError("ours"), "error"),
    ],
)
def test_outcome_names_what_e2b_answered(exc: BaseException, code: str) -> None:
    assert outcome(exc) == code


def test_outcome_looks_through_a_translated_cause() -> None:
    gone = SandboxGone("i123")
    gone.__cause__ = e2b_exc.NotFoundException("404: no such sandbox", status_code=404)
    assert outcome(gone) == "404"


class Adapter:
    @translated
    async def poke(self, fail: BaseException | None) -> str:
        if fail is not None:
            raise fail
        return "done"


async def test_translated_counts_every_call_by_operation_and_code() -> None:
    op = "Adapter.poke"
    ok, busy = (
        value("e2b_operator_e2b_calls_total", operation=op, code="2xx"),
        value("e2b_operator_e2b_calls_total", operation=op, code="503"),
    )
    timed = value("e2b_operator_e2b_call_duration_seconds_count", operation=op)
    assert await Adapter().poke(None) == "done"
    with pytest.raises(BackendError) as err:
        await Adapter().poke(e2b_exc.ServiceBusyException("503: busy"))
    assert err.value.reason == "BackendUnavailable"
    assert value("e2b_operator_e2b_calls_total", operation=op, code="2xx") == ok + 1
    assert value("e2b_operator_e2b_calls_total", operation=op, code="503") == busy + 1
    assert value("e2b_operator_e2b_call_duration_seconds_count", operation=op) == timed + 2


def _status(ready: int, *sandboxes: tuple[str, bool | None]) -> E2BDeploymentStatus:
    return E2BDeploymentStatus.model_validate(
        {
            "readyReplicas": ready,
            "sandboxes": [
                {"sandboxID": f"i{n}", "index": n, "phase": phase, "healthy": healthy}
                for n, (phase, healthy) in enumerate(sandboxes)
            ],
        }
    )


def test_deployment_series_follow_status_and_go_with_the_deployment() -> None:
    ns, name = "unit-metrics", "fleet"
    sandboxes = "e2b_operator_deployment_sandboxes"
    metrics.observe_deployment(
        ns, name, 3, _status(2, ("Running", True), ("Running", True), ("Starting", None))
    )
    assert value("e2b_operator_deployment_replicas_desired", namespace=ns, deployment=name) == 3
    assert value("e2b_operator_deployment_replicas_ready", namespace=ns, deployment=name) == 2
    labels = {"namespace": ns, "deployment": name}
    assert value(sandboxes, **labels, phase="Running", health="healthy") == 2
    assert value(sandboxes, **labels, phase="Starting", health="unknown") == 1
    metrics.observe_deployment(ns, name, 3, _status(1, ("Running", True), ("Unhealthy", False)))
    assert value(sandboxes, **labels, phase="Unhealthy", health="unhealthy") == 1
    # A combination no sandbox has any more is removed, not left at its last value.
    assert (
        REGISTRY.get_sample_value(sandboxes, {**labels, "phase": "Starting", "health": "unknown"})
        is None
    )
    metrics.forget_deployment(ns, name)
    exposed = [
        s
        for family in REGISTRY.collect()
        for s in family.samples
        if s.labels.get("namespace") == ns and s.labels.get("deployment") == name
    ]
    assert exposed == []


def test_a_finished_build_is_timed_from_when_it_started() -> None:
    started = datetime(2026, 1, 1, tzinfo=UTC)
    building = E2BTemplateStatus.model_validate(
        {
            "phase": "Building",
            "conditions": [
                {
                    "type": "Reconciling",
                    "status": "True",
                    "reason": "BuildInProgress",
                    "message": "",
                    "lastTransitionTime": started.isoformat(),
                }
            ],
        }
    )
    before = value("e2b_operator_template_build_duration_seconds_sum", result="ready")
    count = value("e2b_operator_template_build_duration_seconds_count", result="ready")
    ready = building.model_copy(update={"phase": "Ready"})
    metrics.template_build(building, ready, started + timedelta(seconds=42))
    metrics.template_build(ready, ready, started + timedelta(seconds=50))  # no transition
    assert value("e2b_operator_template_build_duration_seconds_count", result="ready") == count + 1
    assert value("e2b_operator_template_build_duration_seconds_sum", result="ready") == before + 42


@pytest.mark.parametrize("raw", ["nine", "-1", "65536", "9090.5"])
def test_a_bad_metrics_port_names_the_variable(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("E2B_OPERATOR_METRICS_PORT", raw)
    with pytest.raises(SettingsError, match="E2B_OPERATOR_METRICS_PORT"):
        Settings.from_env()


def test_metrics_port_zero_serves_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("E2B_OPERATOR_METRICS_PORT", "0")
    settings = Settings.from_env()
    assert settings.metrics_port == 0
    assert metrics.serve(settings.metrics_port, settings.metrics_address) is None
