"""The code-interpreter template's server on port 49999 (runs inside the sandbox, in its venv).

It speaks what `e2b_code_interpreter` sends: `POST /execute` ({code, context_id, language,
env_vars}) answered with NDJSON lines (stdout, stderr, result, error, number_of_executions),
and `/contexts` (create, list, delete, restart). Each context is an IPython kernel driven
through jupyter_client; Python is the only language. Matplotlib figures arrive as PNG results
through ipykernel's inline backend.
"""

import json
import os
import queue
import re
import sys
import threading
import time
import uuid
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from jupyter_client import KernelManager

PORT = 49999
HOME = os.path.expanduser("~")
MIME = {
    "text/plain": "text",
    "text/html": "html",
    "text/markdown": "markdown",
    "image/svg+xml": "svg",
    "image/png": "png",
    "image/jpeg": "jpeg",
    "application/pdf": "pdf",
    "text/latex": "latex",
    "application/json": "json",
    "application/javascript": "javascript",
}
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Context:
    """One kernel; executions in it run one at a time."""

    def __init__(self, cwd: str) -> None:
        self.id = str(uuid.uuid4())
        self.cwd = cwd
        self.lock = threading.Lock()
        self.ready: Future = Future()
        threading.Thread(target=self._start, daemon=True).start()

    def _start(self) -> None:
        try:
            self.km = KernelManager(kernel_name="python3")
            self.km.start_kernel(cwd=self.cwd)
            self.kc = self.km.client()
            self.kc.start_channels()
            self.kc.wait_for_ready(timeout=120)
            self.ready.set_result(True)
        except Exception as e:
            self.ready.set_exception(e)

    def json(self) -> dict:
        return {"id": self.id, "language": "python", "cwd": self.cwd}

    def restart(self) -> None:
        self.ready.result()
        with self.lock:
            self.km.restart_kernel(now=True)
            self.kc.wait_for_ready(timeout=120)

    def shutdown(self) -> None:
        self.ready.result()
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)

    def execute(self, code: str, env_vars: dict, emit) -> None:
        """Run `code`, calling emit(dict) for each output line of the protocol."""
        self.ready.result()
        with self.lock:
            if env_vars:
                self._silent(f"import os as _o; _o.environ.update({json.dumps(env_vars)})")
            try:
                self._run(code, emit)
            finally:
                if env_vars:
                    keys = json.dumps(list(env_vars))
                    self._silent(f"import os as _o; [_o.environ.pop(k, None) for k in {keys}]")

    def _silent(self, code: str) -> None:
        msg_id = self.kc.execute(code, silent=True, store_history=False)
        self._drain(msg_id, None)

    def _run(self, code: str, emit) -> None:
        msg_id = self.kc.execute(code)
        self._drain(msg_id, emit)
        reply = self.kc.get_shell_msg(timeout=None)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.kc.get_shell_msg(timeout=None)
        count = reply["content"].get("execution_count")
        if count is not None:
            emit({"type": "number_of_executions", "execution_count": count})

    def _drain(self, msg_id: str, emit) -> None:
        while True:
            try:
                msg = self.kc.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "status" and content["execution_state"] == "idle":
                return
            if emit is None:
                continue
            stamp = int(time.time() * 1e9)
            if kind == "stream":
                emit({"type": content["name"], "text": content["text"], "timestamp": stamp})
            elif kind in ("execute_result", "display_data"):
                out = {MIME[m]: v for m, v in content["data"].items() if m in MIME}
                extra = {m: v for m, v in content["data"].items() if m not in MIME}
                if extra:
                    out["extra"] = extra
                out["is_main_result"] = kind == "execute_result"
                emit({"type": "result", **out})
            elif kind == "error":
                tb = ANSI.sub("", "\n".join(content["traceback"]))
                emit(
                    {
                        "type": "error",
                        "name": content["ename"],
                        "value": content["evalue"],
                        "traceback": tb,
                    }
                )


CONTEXTS: dict[str, Context] = {}
DEFAULT = Context(HOME)
CONTEXTS[DEFAULT.id] = DEFAULT
GUARD = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def _json(self, code: int, obj) -> None:
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict:
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"{}") if n else {}

    def _context(self, cid) -> Context | None:
        with GUARD:
            return CONTEXTS.get(cid) if cid else DEFAULT

    def do_GET(self) -> None:
        if self.path == "/health":
            self._json(200, {"status": "ok"})
        elif self.path == "/contexts":
            with GUARD:
                self._json(200, [c.json() for c in CONTEXTS.values()])
        else:
            self._json(404, {"message": "not found"})

    def do_DELETE(self) -> None:
        cid = self.path.removeprefix("/contexts/")
        with GUARD:
            ctx = CONTEXTS.pop(cid, None) if cid != DEFAULT.id else None
        if ctx is None:
            self._json(404, {"message": f"context {cid} not found"})
            return
        ctx.shutdown()
        self._json(200, {})

    def do_POST(self) -> None:
        try:
            body = self._body()
        except ValueError:
            self._json(400, {"message": "invalid JSON"})
            return
        lang = body.get("language")
        if lang not in (None, "python"):
            self._json(400, {"message": f"language '{lang}' is not supported by e2b-local"})
        elif self.path == "/execute":
            self._execute(body)
        elif self.path == "/contexts":
            ctx = Context(body.get("cwd") or HOME)
            with GUARD:
                CONTEXTS[ctx.id] = ctx
            self._json(200, ctx.json())
        elif self.path.startswith("/contexts/") and self.path.endswith("/restart"):
            ctx = self._context(self.path.split("/")[2])
            if ctx is None:
                self._json(404, {"message": "context not found"})
                return
            ctx.restart()
            self._json(200, {})
        else:
            self._json(404, {"message": "not found"})

    def _execute(self, body: dict) -> None:
        ctx = self._context(body.get("context_id"))
        if ctx is None:
            self._json(404, {"message": f"context {body.get('context_id')} not found"})
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Connection", "close")
        self.end_headers()

        def emit(obj: dict) -> None:
            self.wfile.write(json.dumps(obj).encode() + b"\n")
            self.wfile.flush()

        try:
            ctx.execute(body.get("code") or "", body.get("env_vars") or {}, emit)
        except OSError:  # the client went away: stop the cell
            ctx.km.interrupt_kernel()
        self.close_connection = True

    def log_message(self, *args) -> None:
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    server.daemon_threads = True
    print(f"code interpreter on :{PORT} ({sys.executable})", flush=True)
    server.serve_forever()
