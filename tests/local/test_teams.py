"""Several API keys as separate teams: each sees only its own sandboxes and templates, with
E2B's answers (404 for another team's sandbox or template name, 403 for its template ID)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from e2b import Sandbox, SandboxQuery, Template
from e2b.exceptions import SandboxException, SandboxNotFoundException

from .conftest import TEAM_B_KEY, LocalServer

EXE = os.path.join(os.path.dirname(sys.executable), "e2b-local")


def _as(local: LocalServer, key: str) -> dict[str, object]:
    return {**local.kw, "api_key": key}


def _listed(query: SandboxQuery, **kw: object) -> set[str]:
    return {s.sandbox_id for s in Sandbox.list(query=query, **kw).next_items()}  # type: ignore[arg-type]


def test_a_team_cannot_list_connect_or_kill_another_teams_sandbox(local: LocalServer) -> None:
    a, b = local.kw, _as(local, TEAM_B_KEY)
    tag = {"teams-test": secrets.token_hex(4)}
    mine = Sandbox.create(metadata=tag, **a)  # type: ignore[arg-type]
    theirs = Sandbox.create(metadata=tag, **b)  # type: ignore[arg-type]
    try:
        assert _listed(SandboxQuery(metadata=tag), **a) == {mine.sandbox_id}
        assert _listed(SandboxQuery(metadata=tag), **b) == {theirs.sandbox_id}
        for sid, other in ((mine.sandbox_id, b), (theirs.sandbox_id, a)):
            with pytest.raises(SandboxNotFoundException):
                Sandbox.connect(sid, **other)  # type: ignore[arg-type]
            with pytest.raises(SandboxNotFoundException):
                Sandbox.get_info(sid, **other)  # type: ignore[arg-type]
            with pytest.raises(SandboxNotFoundException):
                Sandbox.set_timeout(sid, 5, **other)  # type: ignore[arg-type]
            with pytest.raises(SandboxException):
                Sandbox.beta_pause(sid, **other)  # type: ignore[arg-type]
            assert Sandbox.kill(sid, **other) is False  # type: ignore[arg-type]
        # untouched by the other team's calls
        assert mine.commands.run("echo a").stdout == "a\n"
        assert theirs.commands.run("echo b").stdout == "b\n"
        # an API key is no envd credential: without the sandbox's access token, 401
        hb = {"X-API-Key": TEAM_B_KEY}
        envd = {"E2b-Sandbox-Id": mine.sandbox_id, "E2b-Sandbox-Port": "49983"}
        r = httpx.get(f"{local.url}/files?path=/etc/hostname", headers=envd | hb)
        assert r.status_code == 401
        # raw control plane: 404 with E2B's message; X-Total-Running counts the team's own
        r = httpx.delete(f"{local.url}/sandboxes/{mine.sandbox_id}", headers=hb)
        assert r.status_code == 404 and "you don't have access" in r.json()["message"]
        r = httpx.get(f"{local.url}/v2/sandboxes", headers=hb)
        assert int(r.headers["X-Total-Running"]) == len(r.json())
    finally:
        Sandbox.kill(mine.sandbox_id, **a)  # type: ignore[arg-type]
        Sandbox.kill(theirs.sandbox_id, **b)  # type: ignore[arg-type]


def test_the_same_idempotency_key_in_two_teams_makes_two_sandboxes(local: LocalServer) -> None:
    key = f"teams-{secrets.token_hex(6)}"
    made = {}
    for api_key in (local.api_key, TEAM_B_KEY):
        h = {"X-API-Key": api_key, "Idempotency-Key": key}
        body = {"templateID": "base", "timeout": 60}
        first = httpx.post(f"{local.url}/v2/sandboxes", json=body, headers=h).json()["sandboxID"]
        again = httpx.post(f"{local.url}/v2/sandboxes", json=body, headers=h).json()["sandboxID"]
        assert first == again
        made[api_key] = first
    try:
        assert made[local.api_key] != made[TEAM_B_KEY]
    finally:
        Sandbox.kill(made[local.api_key], **local.kw)  # type: ignore[arg-type]
        Sandbox.kill(made[TEAM_B_KEY], **_as(local, TEAM_B_KEY))  # type: ignore[arg-type]


def test_templates_are_the_teams_own(local: LocalServer) -> None:
    a, b = local.kw, _as(local, TEAM_B_KEY)
    name = f"teams-tpl-{secrets.token_hex(4)}"
    built = Template.build(
        Template().from_debian_image().run_cmd("echo team-a > /home/user/owner"), name, **a
    )  # type: ignore[arg-type]
    # B has no template of that name (names are per team) and no access to A's by its ID
    assert Template.exists(name, **a) and not Template.exists(name, **b)  # type: ignore[arg-type]
    with pytest.raises(SandboxException, match=r"404: template .* not found"):
        Sandbox.create(name, **b)  # type: ignore[arg-type]
    with pytest.raises(SandboxException, match="403: You don't have access"):
        Sandbox.create(built.template_id, **b)  # type: ignore[arg-type]
    hb = {"X-API-Key": TEAM_B_KEY}
    listed = httpx.get(f"{local.url}/v2/templates", headers=hb).json()
    assert built.template_id not in {t["templateID"] for t in listed}
    assert {t["templateID"] for t in listed} >= {"base"}  # public ones are everyone's
    for method, path in (
        ("GET", f"/templates/{built.template_id}"),
        ("DELETE", f"/templates/{built.template_id}"),
        ("GET", f"/templates/{built.template_id}/builds/{built.build_id}/status"),
    ):
        assert httpx.request(method, local.url + path, headers=hb).status_code == 403
    # B builds the same name: its own template, A's stays A's
    b_built = Template.build(
        Template().from_debian_image().run_cmd("echo team-b > /home/user/owner"), name, **b
    )  # type: ignore[arg-type]
    assert b_built.template_id != built.template_id
    for kw, owner in ((a, "team-a"), (b, "team-b")):
        sbx = Sandbox.create(name, **kw)  # type: ignore[arg-type]
        try:
            assert sbx.files.read("/home/user/owner") == f"{owner}\n"
        finally:
            sbx.kill()
    ha = {"X-API-Key": local.api_key}
    for tid, h in ((built.template_id, ha), (b_built.template_id, hb)):
        assert httpx.delete(f"{local.url}/templates/{tid}", headers=h).status_code == 204


def test_teams_file_is_read_again_when_it_changes(local: LocalServer) -> None:
    """A second key of team-b, added to the running server's file, sees team-b's sandboxes;
    a file that stops parsing keeps the previous teams; removing the line revokes the key."""
    assert local.teams_file is not None
    original = local.teams_file.read_text()
    key = f"e2b_{secrets.token_hex(16)}"
    h = {"X-API-Key": key}

    def wait_for(code: int) -> None:
        deadline = time.monotonic() + 30
        while httpx.get(f"{local.url}/v2/sandboxes", headers=h).status_code != code:
            assert time.monotonic() < deadline, f"the key never answered {code}"
            time.sleep(0.2)

    wait_for(401)
    theirs = Sandbox.create(**_as(local, TEAM_B_KEY))  # type: ignore[arg-type]
    try:
        local.teams_file.write_text(original + f"team-b={key}\n")
        wait_for(200)
        listed = httpx.get(f"{local.url}/v2/sandboxes", headers=h).json()
        assert theirs.sandbox_id in {s["sandboxID"] for s in listed}
        local.teams_file.write_text(original + f"team-b={key}\nnot a team line\n")
        time.sleep(1.5)  # past the reload check: the bad file was seen and refused
        assert httpx.get(f"{local.url}/v2/sandboxes", headers=h).status_code == 200
        local.teams_file.write_text(original)
        wait_for(401)
    finally:
        local.teams_file.write_text(original)
        theirs.kill()


def _serve(tmp_path: Path, *args: str, teams: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("E2B_")}
    env |= {"E2B_LOCAL_API_KEY": "e2b_default_secret", "E2B_LOCAL_TEAMS": teams}
    cmd = [EXE, "serve", "--state-dir", str(tmp_path / "state"), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("teams", "expected"),
    [
        ("team-a e2b_a_secret", "$E2B_LOCAL_TEAMS, line 1: expected TEAM=KEY"),
        ("a=e2b_a_secret\nTeam_B=e2b_b_secret", "line 2: team 'Team_B' must be 1-63 lowercase"),
        ("a=e2b_a_secret, b=e2b_a_secret", "this key already belongs to team 'a'"),
        ("a=e2b_default_secret", "a key of team 'a' is team 'default'"),
    ],
)
def test_bad_teams_stop_the_start_naming_the_line_never_the_key(
    tmp_path: Path, teams: str, expected: str
) -> None:
    r = _serve(tmp_path, teams=teams)
    assert r.returncode == 2 and expected in r.stderr
    assert "secret" not in r.stderr + r.stdout


def test_a_bad_teams_file_stops_the_start(tmp_path: Path) -> None:
    bad = tmp_path / "teams"
    bad.write_text("# comment, with a comma\nteam-a=e2b_a_secret\nteam-b\n")
    r = _serve(tmp_path, "--teams-file", str(bad))
    assert r.returncode == 2 and f"{bad}, line 3: expected TEAM=KEY" in r.stderr
    assert "secret" not in r.stderr + r.stdout
