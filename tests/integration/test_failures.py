"""Failures users cause or meet: bad Secrets, failing and hanging checks, dead main scripts,
templates deleted in use. Each is reported clearly, bounded, and never stops other work."""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime

from e2b import Sandbox

from support import (
    apply,
    built,
    condition,
    connect,
    deployment,
    faults,
    get,
    owned,
    ready,
    wait_condition,
    wait_for,
)


def secret(name: str, **data: bytes) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }


def secret_env(name: str, secret_name: str, key: str) -> dict:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}}


def test_secret_that_is_not_utf8_stalls_naming_it(kube, namespace, app, operator) -> None:
    apply(kube, namespace, secret("blob", token=b"\xff\xfe\x00binary"))
    apply(kube, namespace, deployment("bad", app, env=[secret_env("TOKEN", "blob", "token")]))
    apply(kube, namespace, deployment("good", app))
    stalled = wait_condition(kube, namespace, "e2bd", "bad", "Stalled", 60, operator.tail)
    message = condition(stalled, "Stalled")["message"]
    assert condition(stalled, "Stalled")["reason"] == "SecretNotText"
    assert f"{namespace}/blob" in message and "'token'" in message and "UTF-8" in message
    wait_for(ready(kube, namespace, "good", 1), 90, "the other deployment Ready", operator.tail)
    assert "UnicodeDecodeError" not in operator.log.read_text()


def sandbox_messages(obj: dict) -> list[str]:
    return [s.get("message") or "" for s in obj.get("status", {}).get("sandboxes", [])]


def with_message(kube, namespace: str, name: str, operator) -> dict:
    """The deployment, once a sandbox of it has a (health-check) message."""
    return wait_for(
        lambda: (o := get(kube, namespace, "e2bd", name)) and any(sandbox_messages(o)) and o,
        90,
        f"a health-check message of {name}",
        operator.tail,
    )


def test_a_hanging_health_check_says_it_timed_out(kube, namespace, operator) -> None:
    built(kube, namespace, "hang", hooks={"healthCheck": "sleep 30"}, detail=operator.tail)
    check = {"intervalSeconds": 5, "failureThreshold": 2, "timeoutSeconds": 1}
    apply(kube, namespace, deployment("hang", "hang", healthCheck=check))
    obj = with_message(kube, namespace, "hang", operator)
    assert sandbox_messages(obj)[0].startswith("health check timed out after 1s")


def test_hook_output_in_status_and_log_masks_secret_env(kube, namespace, e2b, operator) -> None:
    value = "hunter2-9f8e7d6c"
    apply(kube, namespace, secret("creds", token=value.encode()))
    leaky = 'echo "token is $TOKEN"; exit 1'
    built(kube, namespace, "leaky", hooks={"healthCheck": leaky}, detail=operator.tail)
    env = [secret_env("TOKEN", "creds", "token")]
    apply(kube, namespace, deployment("leaky", "leaky", env=env))
    obj = with_message(kube, namespace, "leaky", operator)
    assert sandbox_messages(obj)[0].startswith("health check exited 1: token is ****")
    sandbox = connect(e2b, owned(e2b, obj)[0].sandbox_id)
    assert sandbox.commands.run("echo $TOKEN").stdout.strip() == value  # it was there to leak
    events = kube.kubectl("-n", namespace, "get", "events", "-o", "json").stdout
    status = json.dumps(get(kube, namespace, "e2bd", "leaky"))
    assert value not in status + events + operator.log.read_text()


def events_of(kube, namespace: str, name: str, reason: str) -> list[dict]:
    events = json.loads(kube.kubectl("-n", namespace, "get", "events", "-o", "json").stdout)
    return [
        e for e in events["items"] if e["involvedObject"]["name"] == name and e["reason"] == reason
    ]


def instance(obj: dict, index: int) -> dict:
    found = [i for i in obj.get("status", {}).get("instances", []) if i["index"] == index]
    return found[0] if found else {}


def test_replacements_of_a_failing_instance_back_off(kube, namespace, operator) -> None:
    built(kube, namespace, "never", hooks={"healthCheck": "false"}, detail=operator.tail)
    check = {
        "intervalSeconds": 5,
        "timeoutSeconds": 2,
        "failureThreshold": 1,
        "startupTimeoutSeconds": 3,
    }
    apply(kube, namespace, deployment("never", "never", healthCheck=check))
    wait_for(lambda: events_of(kube, namespace, "never", "Created"), 90, "a first create")
    start = time.monotonic()
    backing_off = wait_for(
        lambda: (
            (o := get(kube, namespace, "e2bd", "never"))
            and instance(o, 0).get("nextAttemptTime")
            and o
        ),
        90,
        "instance 0 waiting to be re-created",
        operator.tail,
    )
    entry = instance(backing_off, 0)
    assert entry["reason"] == "StartupTimeout" and entry["restarts"] >= 2
    assert "no health check passed in 3s" in entry["message"]
    assert condition(backing_off, "Degraded")["reason"] == "InstanceBackOff"
    time.sleep(max(0.0, 40 - (time.monotonic() - start)))
    # Creates 3 s apart without backoff (about 10 in 40 s); with it at 0, ~4, ~18 s, ~42 s.
    creates = len(events_of(kube, namespace, "never", "Created"))
    assert creates <= 5, f"{creates} sandboxes created in 40 s"


def test_a_sandbox_killed_again_and_again_is_replaced_with_backoff(
    kube, namespace, e2b, app, operator
) -> None:
    apply(kube, namespace, deployment("prey", app))
    obj = wait_for(ready(kube, namespace, "prey", 1), 90, "Ready", operator.tail)

    def kill_and_wait(restarts: int) -> dict:
        """Kill instance 0's sandbox; the deployment once its status counts the kill."""
        (victim,) = [s.sandbox_id for s in owned(e2b, obj)]
        assert Sandbox.kill(victim, api_key=e2b.api_key, api_url=e2b.url, sandbox_url=e2b.url)
        return wait_for(
            lambda: (
                (o := get(kube, namespace, "e2bd", "prey"))
                and instance(o, 0).get("restarts") == restarts
                and o
            ),
            60,
            f"restart {restarts} of instance 0 in status",
            operator.tail,
        )

    first = instance(kill_and_wait(1), 0)
    assert first["reason"] == "Vanished" and "disappeared" in first["message"]
    assert "nextAttemptTime" not in first  # the first replacement is immediate
    obj = wait_for(ready(kube, namespace, "prey", 1), 90, "the first replacement", operator.tail)
    second = instance(kill_and_wait(2), 0)
    waited = _seconds(second["nextAttemptTime"]) - _seconds(second["lastRestartTime"])
    assert second["reason"] == "Vanished" and waited == 10
    backing_off = get(kube, namespace, "e2bd", "prey")
    if instance(backing_off, 0).get("nextAttemptTime"):  # still waiting: said so
        assert condition(backing_off, "Degraded")["reason"] == "InstanceBackOff"
    obj = wait_for(ready(kube, namespace, "prey", 1), 90, "the second replacement", operator.tail)
    third = instance(kill_and_wait(3), 0)
    assert _seconds(third["nextAttemptTime"]) - _seconds(third["lastRestartTime"]) == 20


def _seconds(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def test_a_main_script_that_exits_is_noticed(kube, namespace, operator) -> None:
    built(kube, namespace, "crash", script="import sys; sys.exit(1)", detail=operator.tail)
    apply(kube, namespace, deployment("crash", "crash", replicas=2))

    def crash_looping():
        obj = get(kube, namespace, "e2bd", "crash")
        looping = [i for i in obj.get("status", {}).get("instances", []) if i["restarts"] >= 2]
        return looping and obj

    def detail() -> str:
        return json.dumps(get(kube, namespace, "e2bd", "crash").get("status"), indent=1)

    obj = wait_for(crash_looping, 120, "an instance restarted twice", detail)
    entry = next(i for i in obj["status"]["instances"] if i["restarts"] >= 2)
    assert entry["reason"] == "MainScriptExited" and entry["exitCode"] == 1
    assert "main script exited with code 1" in entry["message"]
    assert condition(obj, "Ready")["status"] == "False"
    assert obj["status"]["readyReplicas"] < 2 and obj["status"]["ready"] != "2/2"


def test_a_template_deleted_in_use_says_so_once_and_waits_quietly(
    kube, namespace, app, operator
) -> None:
    apply(kube, namespace, deployment("user", app))
    wait_for(ready(kube, namespace, "user", 1), 90, "Ready", operator.tail)
    kube.kubectl("-n", namespace, "delete", "e2bt", app, "--wait=false")
    obj = wait_for(
        lambda: (
            (o := get(kube, namespace, "e2bd", "user"))
            and condition(o, "Degraded").get("reason") == "TemplateDeleting"
            and o
        ),
        60,
        "Degraded=TemplateDeleting",
        operator.tail,
    )
    assert "being deleted" in condition(obj, "Degraded")["message"]
    time.sleep(12)  # the old handler retried (and logged an ERROR) every 5 s
    assert len(events_of(kube, namespace, app, "InUse")) == 1
    assert len(events_of(kube, namespace, "user", "TemplateDeleting")) == 1
    mine = [line for line in operator.log.read_text().splitlines() if f"[{namespace}/" in line]
    assert not [line for line in mine if "ERROR" in line], "\n".join(mine[-20:])
    assert get(kube, namespace, "e2bd", "user")["status"]["readyReplicas"] == 1
    kube.kubectl("-n", namespace, "delete", "e2bd", "user", "--timeout=60s")
    wait_for(
        lambda: kube.kubectl("-n", namespace, "get", "e2bt", check=False).stdout.strip() == "",
        30,
        "the template deleted once unused",
        operator.tail,
    )


def test_a_create_that_gets_no_answer_is_sent_again_with_its_key(
    kube, namespace, e2b, app, operator
) -> None:
    """E2B took a create and never answered: the same create goes again with the same
    idempotency key after E2B_CREATE_TIMEOUT, within the same try (it waited the request
    timeout, failed with BackendTimeout and backed off)."""
    with faults(e2b, "timeout=120:1:1@/v2/sandboxes") as rules:
        apply(kube, namespace, deployment("unanswered", app, replicas=1))
        obj = wait_for(ready(kube, namespace, "unanswered", 1), 120, "Ready", operator.tail)
    assert rules[0]["hits"] == 1, rules  # a create did hang
    assert len(owned(e2b, obj)) == 1
    events = json.loads(kube.kubectl("-n", namespace, "get", "events", "-o", "json").stdout)
    reasons = [e["reason"] for e in events["items"]]
    assert "Created" in reasons and "BackendTimeout" not in reasons, reasons
