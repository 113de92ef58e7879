"""The operator's Prometheus metrics: handlers and the E2B adapter record, nothing here decides.

Names follow Prometheus conventions (``e2b_operator_`` prefix, base units, ``_total``
counters). Cardinality is bounded: labels are kinds, operations, codes, results, phases and
a deployment's namespace/name (its series are removed when it is deleted); never sandbox ids.
``serve`` exposes them (and the process's own) on ``/metrics``
(``E2B_OPERATOR_METRICS_PORT``, ``E2B_OPERATOR_METRICS_ADDRESS``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Gauge, Histogram, start_http_server
from prometheus_client.context_managers import InprogressTracker

from .api import E2BDeploymentStatus, E2BTemplateStatus
from .prometheus import LATENCY_BUCKETS

RECONCILE_DURATION = Histogram(
    "e2b_operator_reconcile_duration_seconds",
    "Duration of one reconcile pass (observe, decide, act, write status).",
    ["kind"],
    buckets=(0.001, *LATENCY_BUCKETS),
)
RECONCILE_ERRORS = Counter(
    "e2b_operator_reconcile_errors_total",
    "Reconcile passes that failed, by condition reason (or exception type if the pass raised).",
    ["kind", "reason"],
)
RECONCILES_IN_PROGRESS = Gauge(
    "e2b_operator_reconciles_in_progress", "Reconcile passes running now.", ["kind"]
)
LEADER = Gauge("e2b_operator_leader", "1 once this process leads (or acts alone), 0 in standby.")
LOOPS = Gauge("e2b_operator_loops", "Objects whose reconcile loop runs in this operator.", ["kind"])
CREATES_IN_FLIGHT = Gauge(
    "e2b_operator_sandbox_creates_in_flight", "Sandbox creates sent to E2B and not yet answered."
)
CREATES_WAITING = Gauge(
    "e2b_operator_sandbox_creates_waiting",
    "Sandbox creates waiting for their turn (E2B's rate, its sandbox cap, room in flight).",
)
DEPLOYMENT_REPLICAS = Gauge(
    "e2b_operator_deployment_replicas_desired",
    "spec.replicas of each E2BDeployment.",
    ["namespace", "deployment"],
)
DEPLOYMENT_READY = Gauge(
    "e2b_operator_deployment_replicas_ready",
    "Sandboxes of each E2BDeployment that are running and healthy (status.readyReplicas).",
    ["namespace", "deployment"],
)
DEPLOYMENT_SANDBOXES = Gauge(
    "e2b_operator_deployment_sandboxes",
    "Sandboxes of each E2BDeployment by phase and last health-check result.",
    ["namespace", "deployment", "phase", "health"],
)
E2B_CALLS = Counter(
    "e2b_operator_e2b_calls_total",
    "Calls to E2B by adapter operation and outcome: 2xx, the HTTP status E2B answered "
    "(401, 404, 429, 503, ...), timeout, unreachable, error or cancelled.",
    ["operation", "code"],
)
E2B_CALL_DURATION = Histogram(
    "e2b_operator_e2b_call_duration_seconds",
    "Duration of calls to E2B by adapter operation (SandboxBackend.run: the whole command).",
    ["operation"],
    buckets=LATENCY_BUCKETS,
)
E2B_HEDGED = Counter(
    "e2b_operator_e2b_hedged_requests_total",
    "Second requests of idempotent E2B calls whose first got no answer in a few times their "
    "typical time (the first answer wins), by adapter operation.",
    ["operation"],
)
TEMPLATE_BUILD_DURATION = Histogram(
    "e2b_operator_template_build_duration_seconds",
    "E2B template builds from start to ready or failed, by result.",
    ["result"],
    buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600),
)
HEALTH_CHECKS = Counter(
    "e2b_operator_health_checks_total",
    "healthCheck hook runs in sandboxes: passed, failed, or unknown (sandbox unreachable).",
    ["result"],
)

_sandbox_series: dict[tuple[str, str], set[tuple[str, str]]] = {}


@contextlib.contextmanager
def reconcile_pass(kind: str) -> Iterator[None]:
    """Time one pass; a pass that raises counts as an error named after the exception."""
    started = time.monotonic()
    with RECONCILES_IN_PROGRESS.labels(kind).track_inprogress():
        try:
            yield
        except Exception as exc:
            RECONCILE_ERRORS.labels(kind, type(exc).__name__).inc()
            raise
        finally:
            RECONCILE_DURATION.labels(kind).observe(time.monotonic() - started)


def reconcile_error(kind: str, reason: str) -> None:
    """A pass that could not do its work (an E2B call failed); ``reason`` as in conditions."""
    RECONCILE_ERRORS.labels(kind, reason).inc()


def loop(kind: str) -> InprogressTracker:
    """Context manager counting a running reconcile loop of ``kind``."""
    return LOOPS.labels(kind).track_inprogress()


def e2b_call(operation: str, code: str, seconds: float) -> None:
    E2B_CALLS.labels(operation, code).inc()
    E2B_CALL_DURATION.labels(operation).observe(seconds)


def e2b_hedged(operation: str) -> None:
    E2B_HEDGED.labels(operation).inc()


def health_check(ok: bool | None) -> None:
    HEALTH_CHECKS.labels("unknown" if ok is None else "passed" if ok else "failed").inc()


def observe_deployment(
    namespace: str, name: str, desired: int, status: E2BDeploymentStatus
) -> None:
    """Set a deployment's gauges from the status its pass computed."""
    DEPLOYMENT_REPLICAS.labels(namespace, name).set(desired)
    DEPLOYMENT_READY.labels(namespace, name).set(status.ready_replicas)
    counts: dict[tuple[str, str], int] = {}
    for s in status.sandboxes:
        health = "unknown" if s.healthy is None else "healthy" if s.healthy else "unhealthy"
        counts[(s.phase, health)] = counts.get((s.phase, health), 0) + 1
    for phase, health in _sandbox_series.get((namespace, name), set()) - counts.keys():
        DEPLOYMENT_SANDBOXES.remove(namespace, name, phase, health)
    for (phase, health), n in counts.items():
        DEPLOYMENT_SANDBOXES.labels(namespace, name, phase, health).set(n)
    _sandbox_series[(namespace, name)] = set(counts)


def forget_deployment(namespace: str, name: str) -> None:
    """Remove a deleted deployment's series."""
    _sandbox_series.pop((namespace, name), None)
    for gauge in (DEPLOYMENT_REPLICAS, DEPLOYMENT_READY, DEPLOYMENT_SANDBOXES):
        gauge.remove_by_labels({"namespace": namespace, "deployment": name})


def template_build(previous: E2BTemplateStatus, status: E2BTemplateStatus, now: datetime) -> None:
    """Record a build that just ended (Building -> Ready or Failed); it started when
    Reconciling last turned True."""
    if previous.phase != "Building" or status.phase not in ("Ready", "Failed"):
        return
    started = next(
        (c.last_transition_time for c in previous.conditions if c.type == "Reconciling"), None
    )
    if started is not None:
        seconds = max((now - started).total_seconds(), 0.0)
        TEMPLATE_BUILD_DURATION.labels(status.phase.lower()).observe(seconds)


def count_creates(*, in_flight: Callable[[], int], waiting: Callable[[], int]) -> None:
    """Read the create queue at scrape time (called from the HTTP server's thread)."""
    CREATES_IN_FLIGHT.set_function(in_flight)
    CREATES_WAITING.set_function(waiting)


def serve(port: int, address: str) -> WSGIServer | None:
    """Serve /metrics on ``address:port`` in a thread; port 0 serves nothing."""
    if port == 0:
        return None
    server, _thread = start_http_server(port, addr=address)
    return server


def stop(server: WSGIServer | None) -> None:
    """Stop serving (blocks up to half a second: run it in a thread)."""
    if server is not None:
        server.shutdown()
        server.server_close()
