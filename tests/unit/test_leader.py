"""Leader election's pure parts: when a standby may take the Lease, and its settings."""

from __future__ import annotations

import pytest

from e2b_operator.handlers.leader import LeaseSettings, Seen, may_take, observe
from e2b_operator.handlers.settings import SettingsError


def test_a_held_lease_is_taken_only_after_a_whole_duration_without_change() -> None:
    seen = Seen(holder="a", version="7", duration=12, since=100.0)
    assert not may_take(seen, "b", now=111.9)
    assert may_take(seen, "b", now=112.0)


def test_a_released_or_own_lease_is_taken_at_once() -> None:
    assert may_take(Seen(holder=None, version="7", duration=1, since=100.0), "b", now=100.0)
    assert may_take(Seen(holder="", version="7", duration=1, since=100.0), "b", now=100.0)
    assert may_take(Seen(holder="b", version="7", duration=12, since=100.0), "b", now=100.0)


def test_the_clock_restarts_only_when_the_lease_changes() -> None:
    first = observe(None, holder="a", version="7", duration=12)
    assert observe(first, holder="a", version="7", duration=12) is first
    renewed = observe(first, holder="a", version="8", duration=12)
    assert renewed.version == "8" and renewed.since >= first.since


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("E2B_OPERATOR_LEASE", raising=False)
    assert LeaseSettings.from_env() is None
    monkeypatch.setenv("E2B_OPERATOR_LEASE", "e2b-system/e2b-operator")
    monkeypatch.setenv("E2B_OPERATOR_STANDBY_HEALTH", "0.0.0.0:8080")
    monkeypatch.setenv("E2B_OPERATOR_IDENTITY", "pod-1")
    got = LeaseSettings.from_env()
    assert got is not None
    assert (got.namespace, got.name, got.identity) == ("e2b-system", "e2b-operator", "pod-1")
    assert (got.duration, got.renew_deadline, got.retry) == (12, 8, 2)
    assert got.standby_health == ("0.0.0.0", 8080)


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("E2B_OPERATOR_LEASE", "e2b-operator", "expected namespace/name"),
        ("E2B_OPERATOR_LEASE_RENEW_DEADLINE_SECONDS", "20", "must hold"),
        ("E2B_OPERATOR_LEASE_RETRY_SECONDS", "ten", "is not a number"),
        ("E2B_OPERATOR_STANDBY_HEALTH", "localhost", "expected host:port"),
    ],
)
def test_bad_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str
) -> None:
    monkeypatch.setenv("E2B_OPERATOR_LEASE", "e2b-system/e2b-operator")
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=says) as err:
        LeaseSettings.from_env()
    assert name in str(err.value)
