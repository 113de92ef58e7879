"""E2B control-plane REST routes (sandboxes and templates) as SDK 2.63 calls them."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from e2b.api.client import models as m
from e2b.api.client.types import UNSET
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .builds import BuildError, Forbidden, NotFound, TemplateRecord
from .runtime import DEFAULT_TIMEOUT_S, ENVD_VERSION, ApiError, Runtime, SandboxRecord

IDEMPOTENCY_RE = re.compile(r"^[a-z0-9-]{1,255}$")
UPLOAD_PREFIX = "/_e2b_local/uploads/"
UPLOAD_URL_TTL_S = 3600  # the SDK's own upload timeout


class UploadSigner:
    """Presigned upload URLs: an HMAC over (template, build, files hash, expiry) with a key
    that lives only in this server process, so a URL is good for one build's one file."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def _mac(self, tid: str, bid: str, files_hash: str, expires: int) -> str:
        msg = f"{tid}\n{bid}\n{files_hash}\n{expires}".encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()

    def query(self, tid: str, bid: str, files_hash: str) -> str:
        expires = int(time.time()) + UPLOAD_URL_TTL_S
        token = self._mac(tid, bid, files_hash, expires)
        return urlencode({"template": tid, "build": bid, "expires": expires, "token": token})

    def check(self, files_hash: str, q: dict[str, str]) -> tuple[str, str]:
        """The (template, build) a request's query signs for; ApiError if it signs nothing."""
        if not q.get("token"):
            raise ApiError(401, "upload URL without a token: ask GET /templates/{id}/files/{hash}")
        tid, bid, expires = q.get("template", ""), q.get("build", ""), q.get("expires", "")
        if not expires.isdigit() or not hmac.compare_digest(
            q["token"], self._mac(tid, bid, files_hash, int(expires))
        ):
            raise ApiError(403, "upload token is not valid for this file")
        if int(expires) < time.time():
            raise ApiError(403, "upload URL expired")
        return tid, bid


def _dt(v: Any) -> datetime:
    return v if isinstance(v, datetime) else datetime.fromisoformat(str(v))


def sandbox_json(s: SandboxRecord) -> dict[str, Any]:
    return m.Sandbox(
        template_id=s.template.template_id,
        sandbox_id=s.sandbox_id,
        client_id="e2b-local",
        envd_version=ENVD_VERSION,
        alias=s.alias or UNSET,
        envd_access_token=s.access_token,
        domain=None,
    ).to_dict()


def _listed(s: SandboxRecord) -> dict[str, Any]:
    return m.ListedSandbox(
        template_id=s.template.template_id,
        sandbox_id=s.sandbox_id,
        client_id="e2b-local",
        started_at=s.started_at,
        end_at=s.end_at,
        cpu_count=s.cpu_count,
        memory_mb=s.memory_mb,
        disk_size_mb=0,
        state=m.SandboxState(s.state),
        envd_version=ENVD_VERSION,
        alias=s.alias or UNSET,
        metadata=s.metadata,
    ).to_dict()


def _detail(s: SandboxRecord) -> dict[str, Any]:
    return m.SandboxDetail(
        template_id=s.template.template_id,
        sandbox_id=s.sandbox_id,
        client_id="e2b-local",
        started_at=s.started_at,
        end_at=s.end_at,
        envd_version=ENVD_VERSION,
        cpu_count=s.cpu_count,
        memory_mb=s.memory_mb,
        disk_size_mb=0,
        state=m.SandboxState(s.state),
        alias=s.alias or UNSET,
        envd_access_token=s.access_token,
        allow_internet_access=s.allow_internet,
        domain=None,
        metadata=s.metadata,
        lifecycle=m.SandboxLifecycle(
            auto_resume=s.auto_resume,
            on_timeout=m.SandboxOnTimeout("pause" if s.auto_pause else "kill"),
        ),
    ).to_dict()


def _template_json(t: TemplateRecord) -> dict[str, Any]:
    return m.Template(
        template_id=t.template_id,
        build_id=t.build_id,
        cpu_count=t.cpu_count,
        memory_mb=t.memory_mb,
        disk_size_mb=0,
        public=False,
        aliases=t.names,
        names=t.names,
        created_at=_dt(t.created_at),
        updated_at=_dt(t.updated_at),
        created_by=None,
        last_spawned_at=_dt(t.last_spawned_at) if t.last_spawned_at else None,
        spawn_count=t.spawn_count,
        build_count=t.build_count,
        envd_version=ENVD_VERSION,
        build_status=m.TemplateBuildStatus(t.build_status),
    ).to_dict()


def error(code: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=code, headers=headers)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise ApiError(400, f"invalid JSON body: {e}") from e
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    return data


def _str_map(v: Any, what: str) -> dict[str, str]:
    if v is None:
        return {}
    if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
        raise ApiError(400, f"{what} must be an object of strings")
    return dict(v)


def team_of(request: Request) -> str:
    """The team of the request's API key (the server put it there after checking the key)."""
    team: str = request.scope["state"]["team"]
    return team


def _timeout(v: Any, default: int | None) -> int | None:
    if v is None:
        return default
    if not isinstance(v, int) or isinstance(v, bool):
        raise ApiError(400, "timeout must be an integer number of seconds")
    return v


class ControlPlane:
    """Route handlers bound to a Runtime."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.signer = UploadSigner()

    def routes(self) -> list[Route]:
        return [
            Route("/v2/sandboxes", self.create, methods=["POST"]),
            Route("/sandboxes", self.create, methods=["POST"]),
            Route("/v2/sandboxes", self.list_v2, methods=["GET"]),
            Route("/sandboxes", self.list_running, methods=["GET"]),
            Route("/sandboxes/{sid}", self.get, methods=["GET"]),
            Route("/sandboxes/{sid}", self.kill, methods=["DELETE"]),
            Route("/sandboxes/{sid}/timeout", self.set_timeout, methods=["POST"]),
            Route("/sandboxes/{sid}/refreshes", self.refresh, methods=["POST"]),
            Route("/sandboxes/{sid}/pause", self.pause, methods=["POST"]),
            Route("/sandboxes/{sid}/metrics", self.metrics, methods=["GET"]),
            Route("/v2/sandboxes/{sid}/connect", self.connect, methods=["POST"]),
            Route("/sandboxes/{sid}/connect", self.connect, methods=["POST"]),
            Route("/sandboxes/{sid}/resume", self.resume, methods=["POST"]),
            Route("/v3/templates", self.template_request, methods=["POST"]),
            Route("/templates/{tid}/files/{hash}", self.files_link, methods=["GET"]),
            Route("/v2/templates/{tid}/builds/{bid}", self.build_start, methods=["POST"]),
            Route("/templates/{tid}/builds/{bid}/status", self.build_status, methods=["GET"]),
            Route("/templates/{tid}/builds/{bid}/logs", self.build_status, methods=["GET"]),
            Route("/v2/templates", self.templates_list, methods=["GET"]),
            Route("/templates", self.templates_list, methods=["GET"]),
            Route("/templates/aliases/{alias:path}", self.alias, methods=["GET"]),
            Route("/templates/{tid}", self.template_get, methods=["GET"]),
            Route("/templates/{tid}", self.template_delete, methods=["DELETE"]),
        ]

    # -- sandboxes --------------------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        body = await _body(request)
        template = body.get("templateID")
        if not isinstance(template, str) or not template:
            raise ApiError(400, "templateID is required")
        key = request.headers.get("idempotency-key")
        if key is not None and not IDEMPOTENCY_RE.match(key):
            raise ApiError(400, "Idempotency-Key must be 1-255 lowercase letters, digits, hyphens")
        auto_resume = body.get("autoResume") or {}
        sbx = await self.rt.create(
            team=team_of(request),
            template_ref=template,
            timeout=_timeout(body.get("timeout"), DEFAULT_TIMEOUT_S) or DEFAULT_TIMEOUT_S,
            metadata=_str_map(body.get("metadata"), "metadata"),
            env_vars=_str_map(body.get("envVars"), "envVars"),
            allow_internet=body.get("allow_internet_access") is not False,
            auto_pause=bool(body.get("autoPause")),
            auto_resume=bool(isinstance(auto_resume, dict) and auto_resume.get("enabled")),
            idempotency_key=key,
        )
        return JSONResponse(sandbox_json(sbx), status_code=201)

    def _filtered(self, request: Request, default_states: set[str]) -> list[SandboxRecord]:
        q = request.query_params
        meta = dict(parse_qsl(q.get("metadata", ""), keep_blank_values=True))
        states = set(filter(None, ",".join(q.getlist("state")).split(","))) or default_states
        bad = states - {"running", "paused"}
        if bad:
            raise ApiError(400, f"invalid state filter: {', '.join(sorted(bad))}")
        template = q.get("template")
        started_after = q.get("startedAfter")
        after = (
            datetime.fromisoformat(started_after.replace("Z", "+00:00")) if started_after else None
        )
        out = []
        for s in self.rt.all(team_of(request)):
            if s.state not in states:
                continue
            if any(s.metadata.get(k) != v for k, v in meta.items()):
                continue
            if template and template not in (s.template.template_id, s.alias, *s.template.names):
                continue
            if after and s.started_at <= after:
                continue
            out.append(s)
        return out

    async def list_v2(self, request: Request) -> Response:
        q = request.query_params
        order = q.get("order", "desc")
        items = self._filtered(request, {"running", "paused"})
        items.sort(key=lambda s: (s.started_at, s.sandbox_id), reverse=order != "asc")
        try:
            limit = min(max(int(q.get("limit", "100")), 1), 100)
        except ValueError as e:
            raise ApiError(400, "limit must be an integer") from e
        token = q.get("nextToken")
        if token:
            try:
                cursor = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
                ts, sid = cursor.split("__")[:2]
                key = (datetime.fromisoformat(ts), sid)
            except (ValueError, UnicodeDecodeError) as e:
                raise ApiError(400, "invalid nextToken") from e
            # What follows the cursor in this order, as E2B's keyset pages: a sandbox gone
            # since the last page (the cursor's own too) moves nothing (this restarted from
            # the first page when the cursor's sandbox was gone: every sandbox twice).
            if order == "asc":
                items = [s for s in items if (s.started_at, s.sandbox_id) > key]
            else:
                items = [s for s in items if (s.started_at, s.sandbox_id) < key]
        page, rest = items[:limit], items[limit:]
        headers = {"X-Total-Running": str(self.rt.running_count(team_of(request)))}
        if rest:
            last = page[-1]
            cursor = f"{last.started_at.isoformat()}__{last.sandbox_id}"
            headers["X-Next-Token"] = base64.urlsafe_b64encode(cursor.encode()).decode().rstrip("=")
        return JSONResponse([_listed(s) for s in page], headers=headers)

    async def list_running(self, request: Request) -> Response:
        return JSONResponse([_listed(s) for s in self._filtered(request, {"running"})])

    async def get(self, request: Request) -> Response:
        return JSONResponse(_detail(self.rt.get(request.path_params["sid"], team_of(request))))

    async def kill(self, request: Request) -> Response:
        await self.rt.kill(request.path_params["sid"], team_of(request))
        return Response(status_code=204)

    async def set_timeout(self, request: Request) -> Response:
        body = await _body(request)
        t = _timeout(body.get("timeout"), None)
        if t is None:
            raise ApiError(400, "timeout is required")
        self.rt.set_timeout(request.path_params["sid"], team_of(request), t)
        return Response(status_code=204)

    async def refresh(self, request: Request) -> Response:
        body = await _body(request)
        team = team_of(request)
        sbx = self.rt.get(request.path_params["sid"], team)
        duration = _timeout(body.get("duration"), DEFAULT_TIMEOUT_S) or DEFAULT_TIMEOUT_S
        self.rt.set_timeout(sbx.sandbox_id, team, duration)
        return Response(status_code=204)

    async def metrics(self, request: Request) -> Response:
        sbx = self.rt.get(request.path_params["sid"], team_of(request))
        q = request.query_params
        try:
            start, end = (int(q[k]) if q.get(k) else None for k in ("start", "end"))
        except ValueError as e:
            raise ApiError(400, "start and end must be Unix seconds") from e
        return JSONResponse(sbx.metrics.between(start, end))

    async def pause(self, request: Request) -> Response:
        await self.rt.pause(request.path_params["sid"], team_of(request))
        return Response(status_code=204)

    async def connect(self, request: Request) -> Response:
        body = await _body(request)
        sbx, resumed = await self.rt.connect(
            request.path_params["sid"], team_of(request), _timeout(body.get("timeout"), None)
        )
        return JSONResponse(sandbox_json(sbx), status_code=201 if resumed else 200)

    async def resume(self, request: Request) -> Response:
        """The older resume call: like connect, but 409 for a sandbox that is running."""
        sid = request.path_params["sid"]
        if self.rt.get(sid, team_of(request)).state == "running":
            raise ApiError(409, f"Sandbox {sid} is already running")
        return await self.connect(request)

    # -- templates --------------------------------------------------------------------------

    async def template_request(self, request: Request) -> Response:
        body = await _body(request)
        name = body.get("name") or body.get("alias")
        if not isinstance(name, str) or not name:
            raise ApiError(400, "name is required")
        try:
            rec, build = self.rt.templates.request_build(
                name, body.get("tags"), body.get("cpuCount"), body.get("memoryMB"), team_of(request)
            )
        except BuildError as e:
            raise ApiError(400, str(e)) from e
        resp = m.TemplateRequestResponseV3(
            template_id=rec.template_id,
            build_id=build.build_id,
            public=False,
            names=rec.names,
            tags=rec.tags,
            aliases=rec.names,
        )
        return JSONResponse(resp.to_dict(), status_code=202)

    def _template(
        self, request: Request, param: str = "tid", *, own: bool = False
    ) -> TemplateRecord:
        """The request's template, the team's or (unless ``own``) a public one; 404 for a
        name the team does not have, 403 for another team's ID, as E2B answers."""
        tid = request.path_params[param]
        try:
            rec = self.rt.templates.find(tid, team_of(request))
        except NotFound as e:
            raise ApiError(404, f"template '{tid}' not found") from e
        except Forbidden as e:
            raise ApiError(403, f"You don't have access to this sandbox template ({tid})") from e
        if own and rec.team != team_of(request) and rec.template_id != "base":
            raise ApiError(403, f"You don't have access to this sandbox template ({tid})")
        return rec

    async def files_link(self, request: Request) -> Response:
        """Whether a COPY tarball is stored; if not, a presigned URL for the template's newest
        waiting build (the one the SDK has just requested)."""
        rec = self._template(request, own=True)
        h = request.path_params["hash"]
        try:
            present = self.rt.templates.file_path(h).exists()
        except BuildError as e:
            raise ApiError(400, str(e)) from e
        out: dict[str, Any] = {"present": present}
        if not present:
            waiting = [b for b in rec.builds.values() if b.status == "waiting"]
            if not waiting:
                raise ApiError(409, f"template '{rec.template_id}' has no build waiting for files")
            query = self.signer.query(rec.template_id, waiting[-1].build_id, h)
            out["url"] = f"{str(request.base_url).rstrip('/')}{UPLOAD_PREFIX}{h}?{query}"
        return JSONResponse(out, status_code=201)

    async def upload(self, request: Request) -> Response:
        """The presigned upload URL: PUT the COPY tarball. No API key (as with an object
        store), but the URL's token must sign this file for a build that still waits for
        its files; a stored file is never replaced."""
        h = request.path_params["hash"]
        tid, bid = self.signer.check(h, dict(request.query_params))
        rec = self.rt.templates.templates.get(tid)
        build = rec.builds.get(bid) if rec else None
        if build is None or build.status != "waiting":
            raise ApiError(403, "the build of this upload URL no longer accepts files")
        try:
            path = self.rt.templates.file_path(h)
        except BuildError as e:
            raise ApiError(400, str(e)) from e
        tmp = path.with_name(f".{h}.{secrets.token_hex(8)}.part")
        try:
            with open(tmp, "wb") as f:
                async for chunk in request.stream():
                    f.write(chunk)
            with contextlib.suppress(FileExistsError):  # same hash, same content: keep the first
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return Response(status_code=200)

    async def build_start(self, request: Request) -> Response:
        rec = self._template(request, own=True)
        build = rec.builds.get(request.path_params["bid"])
        if build is None:
            raise ApiError(404, "build not found")
        if build.status != "waiting":
            raise ApiError(409, "build already started")
        self.rt.templates.start_build(rec, build, await _body(request))
        return Response(status_code=202)

    async def build_status(self, request: Request) -> Response:
        rec = self._template(request)
        build = rec.builds.get(request.path_params["bid"])
        if build is None:
            raise ApiError(404, "build not found")
        q = request.query_params
        try:
            offset = int(q.get("logsOffset", "0"))
            limit = int(q.get("limit", "100"))
        except ValueError as e:
            raise ApiError(400, "logsOffset and limit must be integers") from e
        entries = build.logs[offset : offset + limit]
        out: dict[str, Any] = {
            "templateID": rec.template_id,
            "buildID": build.build_id,
            "status": build.status,
            "logEntries": entries,
            "logs": [e["message"] for e in entries],
        }
        if build.reason:
            out["reason"] = build.reason
        return JSONResponse(out)

    async def templates_list(self, request: Request) -> Response:
        items = [_template_json(t) for t in self.rt.templates.visible(team_of(request))]
        return JSONResponse(items)

    async def alias(self, request: Request) -> Response:
        rec = self._template(request, "alias")
        return JSONResponse(
            m.TemplateAliasResponse(template_id=rec.template_id, public=False).to_dict()
        )

    async def template_get(self, request: Request) -> Response:
        rec = self._template(request)
        out = _template_json(rec)
        out["builds"] = [{"buildID": b.build_id, "status": b.status} for b in rec.builds.values()]
        return JSONResponse(out)

    async def template_delete(self, request: Request) -> Response:
        rec = self._template(request, own=True)
        in_use = {k for s in self.rt.sandboxes.values() for k in s.template.layers}
        try:
            self.rt.templates.delete(rec.template_id, in_use)
        except BuildError as e:
            raise ApiError(400, str(e)) from e
        return Response(status_code=204)
