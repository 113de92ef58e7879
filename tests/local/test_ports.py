"""Sandbox ports through e2b-local: `get_host(port)` by Host header, E2b-Sandbox-* headers,
HTTP and WebSocket, only the sandbox's own ports, with internet off too."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2b import Sandbox
from websockets.sync.client import connect as ws_connect

from .conftest import LocalServer

DOMAIN = "e2b.localhost"
NPM_E2B = "2.51.0"
NPM_DIR = Path.home() / ".cache" / "e2b-operator" / f"npm-e2b-{NPM_E2B}"

# A stdlib HTTP server (echoes the request) plus a minimal WebSocket echo on one port.
SERVER = textwrap.dedent(
    """
    import base64, hashlib, http.server, json, sys

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            if self.headers.get("Upgrade", "").lower() == "websocket":
                return self.websocket()
            if self.path == "/stream":
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for i in range(3):
                    line = f"line {i}\\n".encode()
                    self.wfile.write(b"%x\\r\\n%s\\r\\n" % (len(line), line))
                self.wfile.write(b"0\\r\\n\\r\\n")
                return
            self.reply({"who": sys.argv[2], "path": self.path, "host": self.headers["Host"],
                        "token": self.headers.get("X-Access-Token")})

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            self.reply({"who": sys.argv[2], "body": body.decode()})

        def reply(self, obj):
            data = json.dumps(obj).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def websocket(self):
            key = self.headers["Sec-WebSocket-Key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            accept = base64.b64encode(hashlib.sha1(key.encode()).digest()).decode()
            self.send_header("Sec-WebSocket-Accept", accept)
            self.end_headers()
            while True:
                head = self.rfile.read(2)
                if len(head) < 2 or head[0] & 0x0F == 8:
                    return
                n = head[1] & 0x7F
                if n == 126:
                    n = int.from_bytes(self.rfile.read(2), "big")
                mask = self.rfile.read(4)
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(n)))
                out = (sys.argv[2] + ":").encode() + data
                n = len(out)
                size = bytes([n]) if n < 126 else bytes([126]) + n.to_bytes(2, "big")
                self.wfile.write(bytes([0x81]) + size + out)
                self.wfile.flush()

        def log_message(self, *a):
            pass

    http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
    """
)


def serve(sbx: Sandbox, port: int, name: str) -> None:
    sbx.files.write("/tmp/server.py", SERVER)
    sbx.commands.run(f"python3 /tmp/server.py {port} {name}", background=True)
    wait = f"for i in $(seq 100); do ss -Htln | grep -q :{port} && exit; sleep 0.05; done"
    sbx.commands.run(wait)


@pytest.fixture(scope="module")
def pair(local: LocalServer) -> Iterator[tuple[Sandbox, Sandbox]]:
    """Two sandboxes, internet off, both listening on 8000 (a answers "a", b "b")."""
    a = Sandbox.create(allow_internet_access=False, domain=DOMAIN, **local.kw)
    b = Sandbox.create(allow_internet_access=False, domain=DOMAIN, **local.kw)
    serve(a, 8000, "a")
    serve(b, 8000, "b")
    yield a, b
    a.kill()
    b.kill()


def via_host(local: LocalServer, sbx: Sandbox, port: int, path: str = "/", **kw) -> httpx.Response:
    """What a client whose DNS points `*.<domain>` at e2b-local sends for get_host(port)."""
    return httpx.request(
        kw.pop("method", "GET"), local.url + path, headers={"Host": sbx.get_host(port)}, **kw
    )


def test_get_host_reaches_each_sandboxs_own_port(
    local: LocalServer, pair: tuple[Sandbox, Sandbox]
) -> None:
    a, b = pair
    assert a.get_host(8000) == f"8000-{a.sandbox_id}.{DOMAIN}"
    r = via_host(local, a, 8000, "/x?y=1")
    assert r.status_code == 200
    assert r.json() == {"who": "a", "path": "/x?y=1", "host": a.get_host(8000), "token": None}
    assert via_host(local, b, 8000).json()["who"] == "b"
    posted = via_host(local, a, 8000, "/p", method="POST", content=b"payload")
    assert posted.json() == {"who": "a", "body": "payload"}
    streamed = via_host(local, b, 8000, "/stream")
    assert streamed.text == "line 0\nline 1\nline 2\n"


def test_sandbox_headers_route_like_sandbox_url(
    local: LocalServer, pair: tuple[Sandbox, Sandbox]
) -> None:
    a, b = pair
    h = {"E2b-Sandbox-Id": b.sandbox_id, "E2b-Sandbox-Port": "8000", "X-Access-Token": "t"}
    r = httpx.get(local.url + "/h", headers=h)
    assert r.json()["who"] == "b"
    assert r.json()["token"] is None  # e2b-local's credentials never reach the sandbox
    # envd's port by host name still is envd (health, then an authenticated file read).
    assert via_host(local, a, 49983, "/health").status_code == 204
    assert a.files.read("/tmp/server.py") == SERVER


def test_closed_ports_and_unknown_sandboxes_answer_502(
    local: LocalServer, pair: tuple[Sandbox, Sandbox]
) -> None:
    a, _ = pair
    closed = via_host(local, a, 8001)
    assert closed.status_code == 502 and "port is not open" in closed.json()["message"]
    gone = httpx.get(local.url + "/", headers={"Host": f"8000-inosuchsandbox.{DOMAIN}"})
    assert gone.status_code == 502 and gone.json()["message"] == "The sandbox was not found"
    # The sandbox is reachable only through e2b-local: nothing listens for it on the host.
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", 8000), timeout=1):
        pass


def test_websocket_by_host_and_by_headers(
    local: LocalServer, pair: tuple[Sandbox, Sandbox]
) -> None:
    a, b = pair
    host, port = local.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    with ws_connect(f"ws://{a.get_host(8000)}/ws", sock=sock) as ws:
        ws.send("hi")
        assert ws.recv(timeout=10) == "a:hi"
        ws.send("again")
        assert ws.recv(timeout=10) == "a:again"
    ws_url = local.url.replace("http://", "ws://") + "/ws"
    h = {"E2b-Sandbox-Id": b.sandbox_id, "E2b-Sandbox-Port": "8000"}
    with ws_connect(ws_url, additional_headers=h) as ws:
        ws.send("x" * 200)
        assert ws.recv(timeout=10) == "b:" + "x" * 200


def test_port_traffic_auto_resumes_a_paused_sandbox(local: LocalServer) -> None:
    lifecycle = {"on_timeout": "pause", "auto_resume": True}
    sbx = Sandbox.create(lifecycle=lifecycle, domain=DOMAIN, **local.kw)  # type: ignore[arg-type]
    plain = Sandbox.create(domain=DOMAIN, **local.kw)
    try:
        serve(sbx, 9000, "resumed")
        serve(plain, 9000, "plain")
        assert sbx.beta_pause() and plain.beta_pause()
        assert via_host(local, sbx, 9000).json()["who"] == "resumed"
        assert via_host(local, plain, 9000).status_code == 502  # paused, no auto_resume
    finally:
        sbx.kill()
        plain.kill()


def _npm_e2b() -> Path:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not (NPM_DIR / "node_modules" / "e2b").exists():
        NPM_DIR.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", f"e2b@{NPM_E2B}"],
            cwd=NPM_DIR,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if r.returncode != 0:
            pytest.skip(f"npm install e2b@{NPM_E2B} failed: {r.stderr[-500:]}")
    return NPM_DIR


JS = """
const { Sandbox } = require("e2b");
const http = require("http");
(async () => {
  const sbx = await Sandbox.create({ allowInternetAccess: false });
  try {
    await sbx.files.write("/tmp/server.py", process.env.SERVER);
    await sbx.commands.run("python3 /tmp/server.py 8080 js", { background: true });
    await sbx.commands.run(process.env.WAIT);
    const host = sbx.getHost(8080);
    const url = new URL(process.env.E2B_API_URL);
    const body = await new Promise((resolve, reject) => {
      http.get({ host: url.hostname, port: url.port, path: "/js", headers: { host } }, (res) => {
        let data = "";
        res.on("data", (c) => (data += c));
        res.on("end", () => resolve(data));
      }).on("error", reject);
    });
    console.log(JSON.stringify({ host, body: JSON.parse(body) }));
  } finally {
    await sbx.kill();
  }
})().catch((e) => { console.error(e); process.exit(1); });
"""


def test_js_sdk_get_host(local: LocalServer) -> None:
    cwd = _npm_e2b()
    env = {
        **os.environ,
        "E2B_API_URL": local.url,
        "E2B_SANDBOX_URL": local.url,
        "E2B_API_KEY": local.api_key,
        "E2B_DOMAIN": DOMAIN,
        "SERVER": SERVER,
        "WAIT": "for i in $(seq 100); do ss -Htln | grep -q :8080 && exit; sleep 0.05; done",
    }
    r = subprocess.run(
        ["node", "-e", JS], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["host"].startswith("8080-") and out["host"].endswith("." + DOMAIN)
    assert out["body"]["who"] == "js" and out["body"]["host"] == out["host"]
