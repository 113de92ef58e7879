"""e2b-local's own API: every write is authenticated, and the API key stays secret."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from e2b import Sandbox, Template

from e2b_operator import localstack
from e2b_operator.controlplane.processes import free_port

from .conftest import LocalServer

EXE = os.path.join(os.path.dirname(sys.executable), "e2b-local")


def _copy_template(ctx: Path, text: str) -> Template:
    (ctx / "payload").mkdir(exist_ok=True)
    (ctx / "payload" / "msg.txt").write_text(text)
    return Template(file_context_path=str(ctx)).from_debian_image().copy("payload", "/opt/payload/")


def _files_hash(t: Template) -> str:
    steps = json.loads(Template.to_json(t))["steps"]
    return next(s["filesHash"] for s in steps if s["type"] == "COPY")


def _upload_url(local: LocalServer, name: str, files_hash: str) -> tuple[str, str, str]:
    """Request a build of ``name`` as the SDK does; (template ID, build ID, upload URL)."""
    h = {"X-API-Key": local.api_key}
    req = httpx.post(f"{local.url}/v3/templates", json={"name": name}, headers=h).json()
    tid, bid = req["templateID"], req["buildID"]
    link = httpx.get(f"{local.url}/templates/{tid}/files/{files_hash}", headers=h).json()
    assert link["present"] is False
    return tid, bid, link["url"]


def _read(local: LocalServer, template: str, path: str) -> str:
    s = Sandbox.create(template, **local.kw)
    try:
        return s.files.read(path)
    finally:
        s.kill()


def test_upload_without_a_valid_token_cannot_replace_template_files(
    local: LocalServer, tmp_path: Path
) -> None:
    t = _copy_template(tmp_path, "original\n")
    Template.build(t, "auth-copy", **local.kw)
    files_hash = _files_hash(t)
    stored = local.state_dir / "files" / f"{files_hash}.tar"
    before = hashlib.sha256(stored.read_bytes()).hexdigest()
    assert _read(local, "auth-copy", "/opt/payload/msg.txt") == "original\n"

    evil = b"not a tarball: attacker's code"
    put = f"{local.url}/_e2b_local/uploads/{files_hash}"
    r = httpx.put(put, content=evil)
    assert r.status_code == 401 and r.json()["code"] == 401 and "token" in r.json()["message"]
    forged = "template=x&build=y&expires=9999999999&token=" + "0" * 64
    r = httpx.put(f"{put}?{forged}", content=evil)
    assert r.status_code == 403 and r.json()["code"] == 403
    # another build's URL (valid for its own file) does not sign this one
    other_hash = "0123456789abcdef" * 4
    _, _, other = _upload_url(local, "auth-other", other_hash)
    assert urlsplit(other).path.endswith(other_hash)
    r = httpx.put(f"{put}?{urlsplit(other).query}", content=evil)
    assert r.status_code == 403
    r = httpx.post(f"{put}?{urlsplit(other).query}", content=evil)
    assert r.status_code == 403

    assert hashlib.sha256(stored.read_bytes()).hexdigest() == before
    Template.build(t, "auth-copy", skip_cache=True, **local.kw)
    assert _read(local, "auth-copy", "/opt/payload/msg.txt") == "original\n"


def test_upload_url_is_for_one_waiting_build(local: LocalServer) -> None:
    files_hash = "fedcba9876543210" * 4
    tid, bid, url = _upload_url(local, "auth-once", files_hash)
    # a build that has started takes no more files, even with its own valid URL
    h = {"X-API-Key": local.api_key}
    start = httpx.post(
        f"{local.url}/v2/templates/{tid}/builds/{bid}",
        json={"fromImage": "debian:12", "steps": []},
        headers=h,
    )
    assert start.status_code == 202
    r = httpx.put(url, content=b"late")
    assert r.status_code == 403 and "no longer accepts" in r.json()["message"]
    assert not (local.state_dir / "files" / f"{files_hash}.tar").exists()


def test_sdk_template_build_with_files(local: LocalServer, tmp_path: Path) -> None:
    t = _copy_template(tmp_path, "fresh upload\n").run_cmd("cat /opt/payload/msg.txt")
    logs: list[str] = []
    Template.build(t, "auth-fresh", on_build_logs=lambda e: logs.append(e.message), **local.kw)
    assert any("fresh upload" in line for line in logs)
    assert _read(local, "auth-fresh", "/opt/payload/msg.txt") == "fresh upload\n"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'[{"kind": "429"}]', "JSON object"),
        (b"{}", "exactly one of"),
        (b"not json", "not JSON"),
        (b'{"spec": 429}', '"spec" must be a string'),
        (b'{"spec": "500:1"}', "unknown fault kind"),
        (b'{"spec": "429:often"}', "bad fault rule '429:often'"),
        (b'{"spec": "429:1", "rules": []}', "exactly one of"),
        (b'{"rules": {"kind": "429"}}', "list of objects"),
        (b'{"rules": [{"kind": "429", "count": "2"}]}', "count"),
        (b'{"rules": [{"kind": "429", "colour": "red"}]}', "colour"),
        (b'{"spec": "429:1", "seed": "x"}', "seed"),
    ],
)
def test_admin_faults_rejects_bad_bodies(local: LocalServer, body: bytes, reason: str) -> None:
    h = {"X-API-Key": local.api_key, "Content-Type": "application/json"}
    local.admin_faults("delay=0.01:0.5@/nowhere")
    try:
        r = httpx.post(f"{local.url}/admin/faults", content=body, headers=h)
        assert r.status_code == 400, r.text
        assert r.json()["code"] == 400 and reason in r.json()["message"]
        rules = httpx.get(f"{local.url}/admin/faults", headers=h).json()["rules"]
        assert [r["path"] for r in rules] == ["/nowhere"], "a refused body changed the rules"
    finally:
        local.admin_faults(None)


def test_admin_needs_the_api_key(local: LocalServer) -> None:
    for method in ("GET", "POST", "DELETE"):
        r = httpx.request(method, f"{local.url}/admin/faults", json={"spec": "503:1"})
        assert r.status_code == 401 and r.json() == {"code": 401, "message": "Invalid API key"}
        r = httpx.request(
            method,
            f"{local.url}/admin/faults",
            json={"spec": "503:1"},
            headers={"X-API-Key": "e2b_wrong"},
        )
        assert r.status_code == 401
    h = {"X-API-Key": local.api_key}
    assert httpx.get(f"{local.url}/admin/faults", headers=h).json() == {"rules": []}


def _args_of(pid: int) -> str:
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True)
    return next(ln for ln in ps.stdout.splitlines() if ln.split(None, 1)[0] == str(pid))


def _exercise(url: str, key: str) -> None:
    """Calls that succeed, fail auth and fail validation: none may echo the key."""
    h = {"X-API-Key": key}
    assert httpx.get(f"{url}/v2/sandboxes", headers=h).status_code == 200
    assert httpx.get(f"{url}/v2/sandboxes", headers={"X-API-Key": key + "x"}).status_code == 401
    assert httpx.post(f"{url}/v2/sandboxes", json={}, headers=h).status_code == 400
    assert httpx.get(f"{url}/templates/nope", headers=h).status_code == 404


def _no_key_in_args(key: str, pid: int) -> bool:
    args = _args_of(pid)
    return key not in args and "--api-key" not in args


def test_key_is_not_on_the_command_line_nor_in_output(local: LocalServer) -> None:
    """The session's server; the `local` fixture checks its whole output once it stopped."""
    assert _no_key_in_args(local.api_key, local.proc.pid)
    _exercise(local.url, local.api_key)


def test_localstack_log_is_private_and_holds_no_key(e2b: localstack.E2BLocal) -> None:
    """The session's server as `make dev` runs it; the `e2b` fixture checks its whole log
    once it stopped."""
    assert _no_key_in_args(e2b.api_key, e2b.pid)
    _exercise(e2b.url, e2b.api_key)
    assert stat.S_IMODE(e2b.log.stat().st_mode) == 0o600
    assert stat.S_IMODE(e2b.log.parent.stat().st_mode) == 0o700
    text = e2b.log.read_text()
    assert "E2B_API_URL" in text and e2b.api_key not in text


def _serve(state: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    base = {k: v for k, v in os.environ.items() if not k.startswith("E2B_")}
    cmd = [EXE, "serve", "--state-dir", str(state), *args]
    return subprocess.Popen(
        cmd, env={**base, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_healthy(url: str, proc: subprocess.Popen) -> str:
    deadline = time.monotonic() + 120  # as start_server: start-up takes 20 s and more under load
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return url
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"e2b-local did not start (exit code {proc.poll()})")


def _stop(proc: subprocess.Popen) -> tuple[str, str]:
    proc.send_signal(signal.SIGTERM)
    return proc.communicate(timeout=30)


def test_generated_key_goes_to_a_private_file(tmp_path: Path) -> None:
    port = free_port()
    proc = _serve(tmp_path / "st", "--port", str(port))
    try:
        assert proc.stdout is not None
        printed = [proc.stdout.readline() for _ in range(3)]
        key_file = tmp_path / "st" / "api-key"
        assert printed[2] == f'export E2B_API_KEY="$(cat {key_file})"\n'
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        key = key_file.read_text().strip()
        url = _wait_healthy(f"http://127.0.0.1:{port}", proc)
        _exercise(url, key)
        assert Sandbox.list(api_key=key, api_url=url, sandbox_url=url).next_items() == []
    finally:
        out, err = _stop(proc)
    assert key not in "".join(printed) + out + err


def test_key_file_and_refused_api_key_flag(tmp_path: Path) -> None:
    refused = _serve(tmp_path / "st", "--api-key", "e2b_on_the_command_line")
    _, err = refused.communicate(timeout=30)
    assert refused.returncode == 2
    assert "E2B_LOCAL_API_KEY" in err and "--api-key-file" in err
    assert not (tmp_path / "st" / "api-key").exists()

    key_file = tmp_path / "key"
    key_file.write_text("e2b_from_a_file_0123\n")
    port = free_port()
    proc = _serve(tmp_path / "st", "--port", str(port), "--api-key-file", str(key_file))
    try:
        url = _wait_healthy(f"http://127.0.0.1:{port}", proc)
        _exercise(url, "e2b_from_a_file_0123")
    finally:
        out, err = _stop(proc)
    assert f'export E2B_API_KEY="$(cat {key_file})"' in out
    assert "e2b_from_a_file_0123" not in out + err
    assert not (tmp_path / "st" / "api-key").exists()
