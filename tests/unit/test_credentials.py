"""Credentials from Secrets (on a fake Kube and clock) and the template checks: pure logic."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from e2b_operator.api import Credentials
from e2b_operator.handlers.credentials import CACHE_SECONDS, CredentialError, CredentialStore
from e2b_operator.handlers.kube import SecretForbidden, SecretMissing
from e2b_operator.handlers.settings import SecretKeyRef
from e2b_operator.reconcile import credentials as rc
from e2b_operator.reconcile.deployment import TemplateView
from e2b_operator.sandboxes.connection import Connection

BASE = Connection(api_key="default-key", api_url="http://e2b.local", sandbox_url="http://e2b.local")
KEY = "e2b_team_secret_value"


class FakeKube:
    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], Any] = {}
        self.reads = 0

    async def read_secret(self, namespace: str, name: str) -> dict[str, bytes]:
        self.reads += 1
        found = self.secrets.get((namespace, name))
        if found is None:
            raise SecretMissing(f"Secret {namespace}/{name} does not exist")
        if isinstance(found, Exception):
            raise found
        return found


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def creds(name: str = "team", **keys: str) -> Credentials:
    return Credentials.from_wire({"secretRef": {"name": name, **keys}})


def store() -> tuple[CredentialStore, FakeKube, Clock]:
    kube, clock = FakeKube(), Clock()
    return CredentialStore(kube, BASE, clock=clock), kube, clock  # type: ignore[arg-type]


def resolve(s: CredentialStore, c: Credentials | None, ns: str = "a", **kw: Any) -> Connection:
    return asyncio.run(s.connection(ns, c, **kw))


def error(s: CredentialStore, c: Credentials | None, ns: str = "a") -> CredentialError:
    with pytest.raises(CredentialError) as e:
        resolve(s, c, ns)
    assert KEY not in e.value.message
    return e.value


def test_a_secret_key_is_the_same_endpoint_with_another_account() -> None:
    s, kube, _ = store()
    kube.secrets["a", "team"] = {"apiKey": f"  {KEY}\n".encode()}
    conn = resolve(s, creds())
    assert conn.api_key == KEY and conn.api_url == BASE.api_url
    assert conn.fingerprint != BASE.fingerprint and KEY not in repr(conn) + conn.fingerprint
    assert resolve(s, None) is BASE
    kube.secrets["a", "other"] = {"key": KEY.encode(), "url": b"https://api.example.com"}
    conn = resolve(s, creds("other", apiKeyKey="key", apiUrlKey="url"))
    assert (conn.api_url, conn.sandbox_url) == ("https://api.example.com", None)


def test_only_the_objects_own_namespace_is_read() -> None:
    s, kube, _ = store()
    kube.secrets["b", "team"] = {"apiKey": KEY.encode()}
    e = error(s, creds(), ns="a")
    assert e.reason == "SecretNotFound" and "spec.credentials.secretRef.name" in e.message
    assert "Secret a/team does not exist" in e.message


@pytest.mark.parametrize(
    ("data", "reason", "words"),
    [
        (
            {"other": KEY.encode()},
            "InvalidCredentials",
            "secretRef.apiKeyKey: Secret a/team has no key 'apiKey'",
        ),
        ({"apiKey": b"\xff\xfe" + KEY.encode()}, "SecretNotText", "'apiKey' is not UTF-8"),
        ({"apiKey": b"  \n"}, "InvalidCredentials", "'apiKey' is empty"),
        ({"apiKey": KEY.encode(), "apiUrl": b"api.e2b.app"}, "InvalidCredentials", "apiUrlKey"),
        ({"apiKey": KEY.encode(), "domain": b"https://e2b.app"}, "InvalidCredentials", "domainKey"),
        (SecretForbidden("403"), "SecretForbidden", "get on secrets"),
        (RuntimeError("apiserver down"), "SecretUnreadable", "retrying"),
    ],
)
def test_bad_secrets_name_the_field_and_the_fix(data: Any, reason: str, words: str) -> None:
    s, kube, _ = store()
    kube.secrets["a", "team"] = data
    e = error(s, creds())
    assert e.reason == reason and words in e.message
    assert e.transient == (reason == "SecretUnreadable")


def test_a_rotated_key_is_used_once_the_cache_expires() -> None:
    s, kube, clock = store()
    kube.secrets["a", "team"] = {"apiKey": b"first"}
    assert resolve(s, creds()).api_key == "first"
    kube.secrets["a", "team"] = {"apiKey": b"second"}
    clock.now += CACHE_SECONDS / 2
    assert resolve(s, creds()).api_key == "first" and kube.reads == 1
    clock.now += CACHE_SECONDS
    assert resolve(s, creds()).api_key == "second" and kube.reads == 2


def test_clean_up_may_use_the_key_a_deleted_secret_last_held() -> None:
    s, kube, clock = store()
    kube.secrets["a", "team"] = {"apiKey": KEY.encode()}
    assert resolve(s, creds()).api_key == KEY
    del kube.secrets["a", "team"]
    clock.now += CACHE_SECONDS
    error(s, creds())
    assert resolve(s, creds(), remembered=True).api_key == KEY
    with pytest.raises(CredentialError):
        resolve(s, creds("never"), remembered=True)


def test_the_default_key_follows_its_secret_and_survives_its_loss() -> None:
    kube, clock = FakeKube(), Clock()
    ref = SecretKeyRef("e2b-system", "e2b-api-key", "apiKey")
    s = CredentialStore(kube, BASE, ref, clock=clock)  # type: ignore[arg-type]
    kube.secrets["e2b-system", "e2b-api-key"] = {"apiKey": b"rotated"}
    assert resolve(s, None).api_key == "rotated"
    del kube.secrets["e2b-system", "e2b-api-key"]
    clock.now += CACHE_SECONDS
    assert resolve(s, None).api_key == "rotated"


@pytest.mark.parametrize(
    ("data", "reason", "words"),
    [
        (None, "SecretNotFound", "Secret e2b-system/e2b-api-key does not exist; create it"),
        ({"other": b"x"}, "InvalidCredentials", "has no key 'apiKey'; add the operator's"),
        ({"apiKey": b"\xff\x00"}, "SecretNotText", "key 'apiKey' is not UTF-8 text; store"),
    ],
)
def test_an_unusable_default_key_without_a_previous_one_is_an_error_until_fixed(
    data: Any, reason: str, words: str
) -> None:
    kube, clock = FakeKube(), Clock()
    ref = SecretKeyRef("e2b-system", "e2b-api-key", "apiKey")
    keyless = Connection(api_key="", api_url=BASE.api_url, sandbox_url=BASE.sandbox_url)
    s = CredentialStore(kube, keyless, ref, clock=clock)  # type: ignore[arg-type]
    if data is not None:
        kube.secrets["e2b-system", "e2b-api-key"] = data
    e = error(s, None)
    assert e.reason == reason and words in e.message and "E2B_API_KEY_SECRET" in e.message
    assert not e.transient
    kube.secrets["e2b-system", "e2b-api-key"] = {"apiKey": KEY.encode()}
    clock.now += CACHE_SECONDS
    assert resolve(s, None).api_key == KEY


def test_deployments_and_executions_must_use_their_templates_credentials() -> None:
    assert rc.mismatch("E2BDeployment", None, "E2BTemplate t", None) is None
    assert rc.mismatch("E2BDeployment", creds(), "E2BTemplate t", creds()) is None
    p = rc.mismatch("E2BDeployment", None, "E2BTemplate t", creds("x"))
    assert p is not None and p.stalled and p.reason == "CredentialsMismatch"
    assert "the operator's own E2B credentials" in p.message and "Secret 'x'" in p.message
    other_key = creds("x", apiKeyKey="k")
    assert rc.mismatch("E2BExecution", creds("x"), "E2BDeployment d", other_key) is not None


def test_a_template_built_for_another_account_is_not_ready_for_this_one() -> None:
    view = TemplateView(name="t", ready=True, template_id="tid", credentials_hash="acct-1")
    assert rc.usable(view, "acct-1") is view
    assert rc.usable(view, "") is view  # unscoped (no accounts)
    legacy = TemplateView(name="t", ready=True, template_id="tid")
    assert rc.usable(legacy, "acct-2") is legacy  # not recorded yet: taken as usable
    moved = rc.usable(view, "acct-2")
    assert moved is not None and not moved.ready and "credentials changed" in moved.message
    assert rc.usable(None, "acct-2") is None
