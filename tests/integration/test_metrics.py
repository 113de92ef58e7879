"""Prometheus metrics of the real operator process and e2b-local, scraped over HTTP while a
deployment comes up, E2B answers 503 and the deployment goes away."""

from __future__ import annotations

from support import (
    apply,
    deployment,
    faults,
    get,
    sample,
    scrape,
    template,
    wait_condition,
    wait_for,
)


def test_series_follow_a_deployment_and_e2b_errors(kube, namespace, e2b, operator) -> None:
    url, local = operator.handle.metrics_url, f"{e2b.url}/metrics"
    fleet = {"namespace": namespace, "deployment": "fleet"}
    before_local = scrape(local)
    apply(kube, namespace, template("app"))
    wait_condition(kube, namespace, "e2bt", "app", "Ready", 120, operator.tail)
    apply(kube, namespace, deployment("fleet", "app", replicas=2))

    ready = "e2b_operator_deployment_replicas_ready"
    ops = wait_for(
        lambda: (s := scrape(url)) and sample(s, ready, **fleet) == 2 and s,
        120,
        "the ready gauge to read 2",
        operator.tail,
    )
    assert sample(ops, "e2b_operator_deployment_replicas_desired", **fleet) == 2
    running = {"phase": "Running", "health": "healthy"}
    assert sample(ops, "e2b_operator_deployment_sandboxes", **fleet, **running) == 2
    assert (
        sample(ops, "e2b_operator_e2b_calls_total", operation="SandboxBackend.create", code="2xx")
        >= 2
    )
    assert sample(ops, "e2b_operator_health_checks_total", result="passed") >= 2
    assert sample(ops, "e2b_operator_template_build_duration_seconds_count", result="ready") >= 1
    assert sample(ops, "e2b_operator_reconcile_duration_seconds_count", kind="E2BDeployment") > 0
    assert sample(ops, "e2b_operator_loops", kind="E2BDeployment") >= 1
    assert sample(ops, "e2b_operator_leader") == 1
    assert {"e2b_operator_sandbox_creates_waiting", "e2b_operator_sandbox_creates_in_flight"} <= {
        name for name, _ in ops
    }
    after_local = scrape(local)
    ids = {s["sandboxID"] for s in get(kube, namespace, "e2bd", "fleet")["status"]["sandboxes"]}
    labels = {v for samples in (ops, after_local) for _, pairs in samples for _, v in pairs}
    assert len(ids) == 2 and not ids & labels, "sandbox ids are not labels"

    def grew(name: str, **labels: str) -> float:
        return sample(after_local, name, **labels) - sample(before_local, name, **labels)

    assert grew("e2b_local_sandbox_creates_total") >= 2
    assert grew("e2b_local_http_requests_total", route="POST /v2/sandboxes", code="201") >= 2
    assert sample(after_local, "e2b_local_sandboxes", state="running") >= 2
    assert grew("e2b_local_template_build_duration_seconds_count", result="ready") >= 1

    # E2B answers 503 to the operator's listings: its E2B-call error counter rises; a build
    # that cannot start is a reconcile error of its template.
    listing = {"operation": "SandboxBackend.list", "code": "503"}
    build_failed = {"kind": "E2BTemplate", "reason": "BackendUnavailable"}
    before = scrape(url)
    with faults(e2b, "503:1:6@/v2/sandboxes,503:1:3@/v3/templates"):
        apply(kube, namespace, template("late"))
        wait_for(
            lambda: (
                (s := scrape(url))
                and sample(s, "e2b_operator_e2b_calls_total", **listing)
                > sample(before, "e2b_operator_e2b_calls_total", **listing)
                and sample(s, "e2b_operator_reconcile_errors_total", **build_failed)
                > sample(before, "e2b_operator_reconcile_errors_total", **build_failed)
            ),
            60,
            "503s counted",
            operator.tail,
        )
    wait_condition(kube, namespace, "e2bt", "late", "Ready", 120, operator.tail)
    got = scrape(local)
    assert sample(got, "e2b_local_http_requests_total", route="GET /v2/sandboxes", code="503") >= 1

    # A deleted deployment leaves no series behind.
    kube.kubectl("-n", namespace, "delete", "e2bd", "fleet", "--timeout=120s")
    wait_for(
        lambda: (
            not [
                key
                for key in scrape(url)
                if ("deployment", "fleet") in key[1] and ("namespace", namespace) in key[1]
            ]
        ),
        60,
        "the deployment's series removed",
        operator.tail,
    )
