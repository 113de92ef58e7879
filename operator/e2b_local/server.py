"""The single ASGI app of e2b-local: control plane, upload URL and envd, on one port.

Requests with an `E2b-Sandbox-Id` header go to that sandbox's envd (like E2B's edge proxy,
which answers 502 "The sandbox was not found" for dead or paused sandboxes) and need the
sandbox's `X-Access-Token` (except envd's `/health`); upload URLs need the token that
`GET /templates/{id}/files/{hash}` signed into them; `/health` and `/metrics` (prom.py) are
open; everything else, `/admin/*` included, is the control plane, which needs `X-API-Key` and
passes through the rate limits of the key's team (limits.py) and fault injection. The team
(`teams.py`) goes into the request's scope state, and the control plane answers with that
team's sandboxes and templates only.
"""

from __future__ import annotations

import hmac
import logging
from collections import Counter
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route

from . import isolation, ports
from .builds import TemplateStore
from .controlplane import UPLOAD_PREFIX, ControlPlane, error
from .envd import EnvdHttp, FileError, build_envd_apps
from .faults import Faults
from .limits import Limiter, Limits
from .runtime import ApiError, Runtime
from .teams import Teams

log = logging.getLogger("e2b_local.server")

Scope = dict[str, Any]
ENVD_SERVICES = ("process.Process", "filesystem.Filesystem", "files", "health")


class LocalE2B:
    """ASGI application; lifespan startup/shutdown create and clean up all host state."""

    def __init__(
        self,
        state_dir: Path,
        teams: Teams,
        max_sandboxes: int = 100,
        faults: Faults | None = None,
        layer_cache: Path | None = None,
        limits: Limits | None = None,
        share_builds: bool = False,
    ) -> None:
        self.teams = teams
        self.calls: Counter[str] = Counter()
        self.faults = faults or Faults()
        self.limiter = Limiter(limits)
        self.caps = isolation.probe()
        if not self.caps.usable:
            raise SystemExit(
                "e2b-local cannot isolate sandboxes here: " + "; ".join(self.caps.missing)
            )
        state_dir.mkdir(parents=True, exist_ok=True)
        host = isolation.Host(state_dir)
        host.lock()
        store = TemplateStore(state_dir, host, layer_cache, share_builds)
        self.runtime = Runtime(host, max_sandboxes, store, self.limiter)
        self.cp = ControlPlane(self.runtime)
        self.envd_http, self.process_app, self.fs_app = build_envd_apps(self.runtime)
        handlers = {ApiError: self._api_error, FileError: self._file_error}
        self.cp_app = Starlette(
            routes=[
                *self.cp.routes(),
                Route("/admin/faults", self.faults.admin, methods=["GET", "POST", "DELETE"]),
                Route("/admin/limits", self.limiter.admin, methods=["GET", "POST", "DELETE"]),
                Route("/admin/host", self._host_info, methods=["GET"]),
                Route("/admin/calls", self._calls, methods=["GET"]),
            ],
            exception_handlers=handlers,  # type: ignore[arg-type]
        )
        self.upload_app = Starlette(
            routes=[Route(UPLOAD_PREFIX + "{hash}", self.cp.upload, methods=["PUT", "POST"])],
            exception_handlers=handlers,  # type: ignore[arg-type]
        )
        self.envd_app = Starlette(
            routes=[
                Route("/health", self._health, methods=["GET"]),
                Route("/files", self._files, methods=["GET", "POST"]),
            ],
            exception_handlers=handlers,  # type: ignore[arg-type]
        )

    @staticmethod
    async def _api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error(exc.code, exc.message, exc.headers)

    @staticmethod
    async def _file_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, FileError)
        return error(exc.code, exc.message)

    async def _calls(self, request: Request) -> Response:
        """Control-plane calls answered since start, by method and route (what E2B would
        count against a team's rate limits); `refused <route>`: those its rate limits refused."""
        return JSONResponse(dict(sorted(self.calls.items())))

    async def _host_info(self, request: Request) -> Response:
        """Where this server keeps its sandboxes on the host (for operators and tests)."""
        host = self.runtime.host
        return JSONResponse(
            {
                "tag": host.tag,
                "runDir": str(host.run_dir),
                "cgroupParent": host.cgroup_parent,
                "nftablesTable": host.network.table,
                "vethPrefix": host.network.if_prefix,
                "sandboxNetwork": str(host.network.block) if host.network.block else None,
            }
        )

    def route_label(self, scope: Scope) -> str:
        """A request's route for metrics: the control-plane route template with its method,
        envd's service, or the kind of traffic; never an id or a path the client chose."""
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        path: str = scope["path"]
        target = ports.route(headers)
        if target is not None:
            if target[1] != ports.ENVD_PORT:
                return "sandbox port"
            service = path.strip("/").split("/")[0]
            return f"envd /{service}" if service in ENVD_SERVICES else "envd other"
        if path.startswith(UPLOAD_PREFIX):
            return "upload"
        if path in ("/health", "/metrics"):
            return path
        for route in self.cp_app.routes:
            if isinstance(route, Route) and route.matches(scope)[0] == Match.FULL:
                return f"{scope['method']} {route.path}"
        return "unmatched"

    def sandbox_states(self) -> dict[str, int]:
        """How many sandboxes are starting, running and paused."""
        states = Counter(s.state for s in list(self.runtime.sandboxes.values()))
        running = states.get("running", 0)
        starting = self.runtime.running_count() - running
        return {"starting": starting, "running": running, "paused": states.get("paused", 0)}

    async def _health(self, request: Request) -> Response:
        return Response(status_code=204)

    async def _files(self, request: Request) -> Response:
        sbx = self.runtime.sandboxes[request.headers["e2b-sandbox-id"]]
        h: EnvdHttp = self.envd_http
        if request.method == "GET":
            return await h.files_get(sbx, request)
        return await h.files_post(sbx, request)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] not in ("http", "websocket"):
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        path: str = scope["path"]
        target = ports.route(headers)
        if target is not None:
            await self._sandbox(scope, receive, send, *target, headers)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if path.startswith(UPLOAD_PREFIX):
            await self.upload_app(scope, receive, send)
            return
        if path == "/health":
            await Response(status_code=200)(scope, receive, send)
            return
        team = self.teams.team(headers.get("x-api-key", ""))
        if team is None:
            await error(401, "Invalid API key")(scope, receive, send)
            return
        scope["state"] = {**scope.get("state", {}), "team": team}
        if not path.startswith("/admin/"):
            route = _route(scope["method"], path)
            self.calls[route] += 1
            refusal = self.limiter.admit(team, scope["method"], path)
            if refusal is not None:
                self.calls[f"refused {route}"] += 1
                await refusal.response()(scope, receive, send)
                return
            injected = await self.faults.intercept(path)
            if injected is not None:
                await injected(scope, receive, send)
                return
        await self.cp_app(scope, receive, send)

    async def _sandbox(
        self, scope: Scope, receive: Any, send: Any, sid: str, port: int, headers: dict[str, str]
    ) -> None:
        """A request for a sandbox's port, by host name or headers; envd's port is served here."""
        ws = scope["type"] == "websocket"
        sbx = await self.runtime.for_traffic(sid)
        if sbx is None or (ws and port == ports.ENVD_PORT):
            if ws:
                await send({"type": "websocket.close", "code": 1008})
                return
            body = {"code": 502, "message": "The sandbox was not found", "sandboxId": sid}
            await JSONResponse(body, status_code=502)(scope, receive, send)
            return
        if port != ports.ENVD_PORT:
            proxy = ports.websocket if ws else ports.http
            await proxy(scope, receive, send, sbx.runtime, port)
            return
        if "e2b-sandbox-id" not in headers:  # routed by host name: envd finds it by header
            scope["headers"] = [*scope["headers"], (b"e2b-sandbox-id", sid.encode())]
        path: str = scope["path"]
        if path != "/health" and not hmac.compare_digest(
            headers.get("x-access-token", "").encode(), sbx.access_token.encode()
        ):
            await error(401, "invalid or missing X-Access-Token")(scope, receive, send)
            return
        if path.startswith("/process.Process/"):
            await self.process_app(scope, receive, send)
        elif path.startswith("/filesystem.Filesystem/"):
            await self.fs_app(scope, receive, send)
        else:
            await self.envd_app(scope, receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    await self.runtime.startup()
                except Exception as e:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(e)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await self.runtime.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _route(method: str, path: str) -> str:
    """`GET /sandboxes/{id}` for `GET /sandboxes/i3f2...`: ids elided, versions (v2) kept."""
    parts = [
        p if p.isalpha() or (p[0] == "v" and p[1:].isdigit()) else "{id}"
        for p in path.strip("/").split("/")
        if p
    ]
    return f"{method} /{'/'.join(parts)}"
