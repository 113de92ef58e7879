"""Per-namespace E2B credentials: two namespaces with the keys of two e2b-local teams see only
their own sandboxes; a key rotated in the Secret is used without a restart; a missing Secret
or credentials that differ from the template's are clear conditions."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from e2b_operator import localstack
from e2b_operator.controlplane.processes import alive
from support import (
    apply,
    condition,
    deployment,
    fresh_namespace,
    get,
    sandboxes,
    template,
    wait_condition,
    wait_for,
)

SECRET = "e2b-team"
CREDENTIALS = {"secretRef": {"name": SECRET}}


def _secret(key: str, name: str = SECRET) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "stringData": {"apiKey": key},
    }


@pytest.fixture
def other_namespace(kube) -> Iterator[str]:
    with fresh_namespace(kube) as name:
        yield name


def _ids(e2b, key: str, namespace: str) -> set[str]:
    return {s.sandbox_id for s in sandboxes(e2b, team_key=key, **{"k8s-namespace": namespace})}


def test_two_namespaces_two_teams_and_rotation_without_restart(
    kube, namespace, other_namespace, e2b, operator
):
    tag = secrets.token_hex(3)
    key_a, key_b = e2b.add_team(f"a-{tag}"), e2b.add_team(f"b-{tag}")
    for ns, key, replicas in ((namespace, key_a, 2), (other_namespace, key_b, 1)):
        apply(
            kube,
            ns,
            _secret(key),
            template("app", credentials=CREDENTIALS),
            deployment("app", "app", replicas=replicas, credentials=CREDENTIALS),
        )
    for ns in (namespace, other_namespace):
        wait_condition(kube, ns, "e2bd", "app", "Ready", 180, operator.tail)
    # each team sees its own namespace's sandboxes, and nothing of the other's; the
    # operator's own key (the default team) sees neither
    assert len(_ids(e2b, key_a, namespace)) == 2 and not _ids(e2b, key_a, other_namespace)
    assert len(_ids(e2b, key_b, other_namespace)) == 1 and not _ids(e2b, key_b, namespace)
    assert not _ids(e2b, e2b.api_key, namespace) | _ids(e2b, e2b.api_key, other_namespace)

    # rotation: namespace B's Secret now holds the key of a third team; scaled to 2, its
    # sandboxes appear in the new team (the template rebuilt there), no operator restart
    pid = operator.handle.pid
    key_c = e2b.add_team(f"c-{tag}")
    apply(kube, other_namespace, _secret(key_c))
    kube.kubectl("-n", other_namespace, "scale", "e2bd/app", "--replicas=2")
    wait_for(
        lambda: len(_ids(e2b, key_c, other_namespace)) == 2,
        180,
        "namespace B's sandboxes in the new team",
        operator.tail,
    )
    wait_for(
        lambda: get(kube, other_namespace, "e2bd", "app")["status"].get("readyReplicas") == 2,
        120,
        "deployment B ready with the new team's sandboxes",
        operator.tail,
    )
    assert alive(pid) and operator.handle.pid == pid
    assert len(_ids(e2b, key_a, namespace)) == 2  # namespace A untouched
    for key in (key_a, key_b, key_c):
        assert key not in operator.log.read_text()
        assert key not in kube.kubectl("get", "e2bt,e2bd,events", "-A", "-o", "json").stdout


def test_missing_secret_and_mismatched_credentials_are_conditions(kube, namespace, operator):
    missing = {"secretRef": {"name": "nowhere"}}
    apply(
        kube,
        namespace,
        template("lost", credentials=missing),
        deployment("lost", "lost", credentials=missing),
        template("keyed", credentials=missing),
        deployment("unkeyed", "keyed"),  # the operator's own key, the template's Secret
    )
    for kind, name in (("e2bt", "lost"), ("e2bd", "lost")):
        stalled = wait_condition(kube, namespace, kind, name, "Stalled", 60, operator.tail)
        c = condition(stalled, "Stalled")
        assert c["reason"] == "SecretNotFound", c
        assert "spec.credentials.secretRef.name" in c["message"] and "nowhere" in c["message"]
    stalled = wait_condition(kube, namespace, "e2bd", "unkeyed", "Stalled", 60, operator.tail)
    c = condition(stalled, "Stalled")
    assert c["reason"] == "CredentialsMismatch" and "E2BTemplate keyed" in c["message"], c


def test_a_default_key_secret_that_is_not_text_stalls_only_the_objects_using_it(
    kube, namespace, e2b, operator
):
    ns, name = localstack.API_KEY_SECRET
    own_key = e2b.add_team(f"own-{secrets.token_hex(3)}")
    not_text = {"data": {"apiKey": base64.b64encode(b"\xff\xfe" + own_key.encode()).decode()}}
    kube.kubectl("-n", ns, "patch", "secret", name, "--type=merge", "-p", json.dumps(not_text))
    recovered = False
    try:
        operator.restart()  # the operator starts with it (it used to crash at start-up)
        apply(kube, namespace, template("plain"), deployment("plain", "plain"))
        apply(
            kube,
            namespace,
            _secret(own_key),
            template("own", credentials=CREDENTIALS),
            deployment("own", "own", credentials=CREDENTIALS),
        )
        for kind in ("e2bt", "e2bd"):
            obj = wait_condition(kube, namespace, kind, "plain", "Stalled", 120, operator.tail)
            stalled = condition(obj, "Stalled")
            assert stalled["reason"] == "SecretNotText", stalled
            assert f"Secret {ns}/{name} key 'apiKey' is not UTF-8" in stalled["message"]
            assert "E2B_API_KEY_SECRET" in stalled["message"] and "plain text" in stalled["message"]
        wait_condition(kube, namespace, "e2bd", "own", "Ready", 180, operator.tail)  # goes on
        pid = operator.handle.pid
        assert alive(pid)
        errors = [line for line in operator.log.read_text().splitlines() if "ERROR" in line]
        assert any(f"Secret {ns}/{name} key 'apiKey' is not UTF-8" in line for line in errors)
        # Fixed: the objects that waited recover, without a restart.
        localstack.store_api_key(kube, e2b)
        wait_condition(kube, namespace, "e2bd", "plain", "Ready", 180, operator.tail)
        assert operator.handle.pid == pid and alive(pid)
        recovered = True
    finally:
        localstack.store_api_key(kube, e2b)
        if not recovered:
            operator.restart()
