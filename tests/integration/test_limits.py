"""E2B's limits, met by the operator: pacing at the create rate, fair turns under the sandbox cap,
and a prompt recovery after an outage (real apiserver, operator, SDK and e2b-local with its
limits and faults switched on through its admin endpoints)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from e2b_operator.controlplane.cluster import LocalCluster
from e2b_operator.localstack import E2BLocal
from support import (
    apply,
    built,
    condition,
    deployment,
    fresh_namespace,
    get,
    is_true,
    ready,
    sandboxes,
    wait_for,
)


@pytest.fixture(scope="module")
def namespace(kube: LocalCluster) -> Iterator[str]:
    """One namespace (and one template build) for the module's tests."""
    with fresh_namespace(kube, "t-limits") as name:
        yield name


@pytest.fixture(scope="module")
def app(kube: LocalCluster, namespace: str, operator) -> str:
    return built(kube, namespace, detail=operator.tail)


def admin(e2b: E2BLocal, method: str, what: str, body: object = None) -> Any:
    resp = httpx.request(
        method, f"{e2b.url}/admin/{what}", json=body, headers={"X-API-Key": e2b.api_key}
    )
    resp.raise_for_status()
    return resp.json()


@pytest.fixture
def limits(kube: LocalCluster, namespace: str, e2b: E2BLocal) -> Iterator[None]:
    """e2b-local's limits and faults are off again afterwards, and the test's deployments
    go (while the next test starts)."""
    try:
        yield
    finally:
        admin(e2b, "DELETE", "limits")
        admin(e2b, "DELETE", "faults")
        kube.kubectl("-n", namespace, "delete", "e2bd", "--all", "--wait=false", check=False)


def creates_refused(e2b: E2BLocal) -> int:
    """Creates e2b-local's rate limit refused (429) on either create route."""
    calls = admin(e2b, "GET", "calls")
    return sum(int(calls.get(f"refused POST {r}", 0)) for r in ("/v2/sandboxes", "/sandboxes"))


def warnings(kube: LocalCluster, namespace: str, reason: str) -> int:
    out = kube.kubectl(
        "-n", namespace, "get", "events", "--field-selector", f"reason={reason}", "-o", "name"
    )
    return len(out.stdout.split())


def test_a_small_deployment_gets_its_share_beside_a_huge_one_under_the_cap(
    kube, namespace, e2b, app, operator, limits
):
    # Room for 20 more beside what earlier tests left (still going, perhaps: they only ever
    # make more room, by at most their number).
    leftovers = len(sandboxes(e2b))
    cap = leftovers + 20
    admin(e2b, "POST", "limits", {"preset": "pro", "concurrent_sandboxes": cap})
    apply(kube, namespace, deployment("huge", app, replicas=1000), deployment("small", app, 4))
    wait_for(ready(kube, namespace, "small", 4), 180, "small 4/4", operator.tail)

    def held():
        obj = get(kube, namespace, "e2bd", "huge")
        cond = condition(obj, "Ready")
        return cond.get("reason") == "CapacityExhausted" and cond

    holding = wait_for(held, 120, "huge reports CapacityExhausted", operator.tail)
    assert "maximum number of concurrent E2B sandboxes" in holding["message"]
    huge = get(kube, namespace, "e2bd", "huge")
    assert 10 <= (huge["status"].get("replicas") or 0) <= 20 + leftovers
    assert warnings(kube, namespace, "CapacityExhausted") <= 1  # one Warning when Degraded


def test_scale_to_30_is_paced_at_the_create_rate(kube, namespace, e2b, app, operator, limits):
    admin(e2b, "POST", "limits", {"preset": "pro"})  # 5 creates/s, 100 sandboxes
    before = creates_refused(e2b)
    apply(kube, namespace, deployment("web", app, replicas=30))
    reasons: set[str] = set()

    def converged():
        obj = get(kube, namespace, "e2bd", "web")
        reasons.add(condition(obj, "Reconciling").get("reason", ""))
        return ready(kube, namespace, "web", 30)()

    obj = wait_for(converged, 300, "30 ready sandboxes", operator.tail)
    assert "RateLimited" in reasons, reasons  # status said why it waited
    refused = creates_refused(e2b) - before
    # Unpaced, the first batch alone meets some 25 refusals (32 creates at once, a burst of
    # 5); paced, a few can still arrive bunched when a loaded host delays their sending.
    assert refused <= 6, f"{refused} creates refused: the operator did not pace itself"
    assert warnings(kube, namespace, "RateLimited") <= 3  # no error storm
    assert len(sandboxes(e2b, **{"k8s-deployment-uid": obj["metadata"]["uid"]})) == 30


def test_deployments_recover_as_soon_as_e2b_is_back(kube, namespace, e2b, app, operator, limits):
    names = [f"d{i}" for i in range(3)]
    apply(kube, namespace, *(deployment(n, app) for n in names))
    for n in names:
        wait_for(ready(kube, namespace, n, 1), 120, f"{n} ready", operator.tail)
    mark = operator.log.stat().st_size
    admin(e2b, "POST", "faults", {"spec": "503:1@/sandboxes,503:1@/v2/sandboxes"})

    def backed_off() -> dict[str, datetime]:
        """Per deployment: when its latest backoff had its next pass scheduled."""
        text = operator.log.read_text(errors="replace")[mark:]
        due = {}
        for ns, name, at in BACKOFF.findall(text):
            if ns == namespace:
                due[name] = datetime.fromisoformat(at)
        return due

    # The outage lasts until every deployment has backed off far beyond its end.
    def long_backoffs():
        due = backed_off()
        now = datetime.now().astimezone()
        return len(due) == len(names) and all((d - now).total_seconds() > 12 for d in due.values())

    wait_for(long_backoffs, 120, "every deployment backing off for long", operator.tail)
    for n in names:
        assert is_true(get(kube, namespace, "e2bd", n), "Degraded")
    scheduled = backed_off()
    admin(e2b, "DELETE", "faults")
    for n in names:
        obj = wait_for(
            lambda n=n: not is_true(o := get(kube, namespace, "e2bd", n), "Degraded") and o,
            120,
            f"{n} recovered",
            operator.tail,
        )
        back = datetime.fromisoformat(condition(obj, "Degraded")["lastTransitionTime"])
        assert back < scheduled[n], f"{n} sat out its backoff (until {scheduled[n]})"


BACKOFF = re.compile(
    r"\[([\w-]+)/([\w-]+)\] backing off after \d+ failed pass\(es\): next pass at (\S+)"
)
