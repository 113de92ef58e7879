"""Sandbox ports: HTTP and WebSocket to 127.0.0.1:<port> inside one sandbox's network namespace.

The connection is a socket created in the sandbox's namespace (`netns.in_netns`), so a port is
reachable only through e2b-local, only for that sandbox, and also with internet off. Like E2B's
edge proxy, ports need no token, and a port nothing listens on answers 502.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from typing import Any

import h11
from starlette.responses import JSONResponse

from .netns import in_netns
from .sandbox import SandboxRuntime

Scope = dict[str, Any]

ENVD_PORT = 49983
HOST_RE = re.compile(r"^(\d{1,5})-([A-Za-z0-9]+)\.")
# Hop-by-hop headers, and e2b-local's own routing and credentials (never shown to the sandbox).
DROPPED = {
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
    b"e2b-sandbox-id",
    b"e2b-sandbox-port",
    b"x-access-token",
}


def route(headers: dict[str, str]) -> tuple[str, int] | None:
    """(sandbox id, port) of a request: host `<port>-<id>.<domain>` or the E2b-Sandbox-Id and
    E2b-Sandbox-Port headers (envd's port if absent); None for the control plane."""
    m = HOST_RE.match(headers.get("host", ""))
    if m:
        return m.group(2), int(m.group(1))
    sid = headers.get("e2b-sandbox-id")
    if sid is None:
        return None
    port = headers.get("e2b-sandbox-port", "")
    return sid, int(port) if port.isdigit() else ENVD_PORT


def port_closed(sid: str, port: int) -> JSONResponse:
    body = {
        "code": 502,
        "message": "The sandbox is running but port is not open",
        "sandboxId": sid,
        "port": port,
    }
    return JSONResponse(body, status_code=502)


async def connect(sbx: SandboxRuntime, port: int) -> socket.socket:
    """A TCP connection to 127.0.0.1:port inside the sandbox (OSError if nothing listens)."""
    if sbx.netns_fd is None or not 0 < port < 65536:
        raise ConnectionRefusedError("no such port")
    sock = in_netns(sbx.netns_fd, lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    return sock


def _forwarded(scope: Scope) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v in scope["headers"] if k.lower() not in DROPPED]


async def _send(sock: socket.socket, data: bytes | None) -> None:
    """Send what h11 framed, if anything: send(b"") fails once the app has hung up."""
    if data:
        await asyncio.get_running_loop().sock_sendall(sock, data)


async def http(scope: Scope, receive: Any, send: Any, sbx: SandboxRuntime, port: int) -> None:
    """Forward one HTTP request and stream the response back (NDJSON, SSE, large bodies)."""
    try:
        sock = await connect(sbx, port)
    except OSError:
        await port_closed(sbx.id, port)(scope, receive, send)
        return
    loop = asyncio.get_running_loop()
    conn = h11.Connection(h11.CLIENT)
    headers = _forwarded(scope)
    has_body = any(
        k.lower() in (b"content-length", b"transfer-encoding") for k, _ in scope["headers"]
    )
    if has_body and not any(k.lower() == b"content-length" for k, _ in headers):
        headers.append((b"transfer-encoding", b"chunked"))
    target = scope.get("raw_path") or scope["path"].encode()
    if scope.get("query_string"):
        target += b"?" + scope["query_string"]
    watcher: asyncio.Task | None = None
    started = False
    try:
        out = conn.send(h11.Request(method=scope["method"], target=target, headers=headers))
        await _send(sock, out)
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            if msg.get("body"):
                await _send(sock, conn.send(h11.Data(data=msg["body"])))
            if not msg.get("more_body"):
                break
        await _send(sock, conn.send(h11.EndOfMessage()))

        async def until_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            sock.shutdown(socket.SHUT_RDWR)

        watcher = loop.create_task(until_disconnect())
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await loop.sock_recv(sock, 65536)
                except OSError:
                    data = b""
                conn.receive_data(data)
                continue
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                resp_headers = [(k, v) for k, v in event.headers if k.lower() not in DROPPED]
                await send(
                    {
                        "type": "http.response.start",
                        "status": event.status_code,
                        "headers": resp_headers,
                    }
                )
                started = True
            elif isinstance(event, h11.Data):
                await send(
                    {"type": "http.response.body", "body": bytes(event.data), "more_body": True}
                )
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
    except (h11.ProtocolError, OSError):
        if not started:
            await port_closed(sbx.id, port)(scope, receive, send)
        else:  # the response was cut short: end it, the client sees a truncated body
            with contextlib.suppress(OSError):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        if watcher is not None:
            watcher.cancel()
        sock.close()


async def websocket(scope: Scope, receive: Any, send: Any, sbx: SandboxRuntime, port: int) -> None:
    """Open the same WebSocket to the sandbox's port, then relay messages both ways."""
    # uvicorn delivers WebSocket scopes only when the `websockets` package is installed.
    from websockets.asyncio.client import connect as ws_connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake

    await receive()  # websocket.connect
    try:
        sock = await connect(sbx, port)
    except OSError:
        await send({"type": "websocket.close", "code": 1011, "reason": "port is not open"})
        return
    skip = DROPPED | {
        b"host",
        b"sec-websocket-key",
        b"sec-websocket-version",
        b"sec-websocket-extensions",
        b"sec-websocket-protocol",
    }
    path = scope.get("raw_path") or scope["path"].encode()
    query = b"?" + scope["query_string"] if scope.get("query_string") else b""
    uri = f"ws://127.0.0.1:{port}{(path + query).decode()}"
    try:
        upstream = await ws_connect(
            uri,
            sock=sock,
            additional_headers=[
                (k.decode(), v.decode()) for k, v in scope["headers"] if k.lower() not in skip
            ],
            subprotocols=scope.get("subprotocols") or None,
            compression=None,
            max_size=None,
            ping_interval=None,
            open_timeout=30,
        )
    except (OSError, InvalidHandshake, TimeoutError):
        sock.close()
        await send({"type": "websocket.close", "code": 1011, "reason": "upstream refused"})
        return
    await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})

    async def client_to_sandbox() -> None:
        while True:
            m = await receive()
            if m["type"] == "websocket.disconnect":
                await upstream.close(m.get("code", 1000))
                return
            await upstream.send(m["bytes"] if m.get("bytes") is not None else m.get("text", ""))

    async def sandbox_to_client() -> None:
        try:
            async for data in upstream:
                key = "bytes" if isinstance(data, bytes) else "text"
                await send({"type": "websocket.send", key: data})
        except ConnectionClosed:
            pass
        code = upstream.close_code or 1000
        with contextlib.suppress(Exception):
            await send({"type": "websocket.close", "code": code})

    tasks = [asyncio.ensure_future(client_to_sandbox()), asyncio.ensure_future(sandbox_to_client())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await upstream.close()
