"""The envd API of every sandbox: /health, /files and the Process/Filesystem Connect services.

Requests are routed to a sandbox by the `E2b-Sandbox-Id` header (see server.py) and must carry
that sandbox's `X-Access-Token` (except /health). Processes run inside the sandbox through its
namespace init; files are accessed through sbxfs, confined to the sandbox root.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import fcntl
import grp
import os
import posixpath
import secrets
import signal
import stat as st
import struct
import termios
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from e2b.envd.filesystem import filesystem_pb as fpb
from e2b.envd.filesystem.filesystem_connect import FilesystemASGIApplication
from e2b.envd.process import process_pb as ppb
from e2b.envd.process.process_connect import ProcessASGIApplication
from protobuf import Oneof
from protobuf.wkt import Timestamp
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from . import sbxfs
from .idmap import ID_BASE, ID_COUNT
from .runtime import Runtime, SandboxRecord
from .sandbox import Proc, SandboxError, User
from .watch import Watcher

KEEPALIVE_S = 50.0


def _basic_user(auth: str | None) -> str | None:
    if not auth or not auth.lower().startswith("basic "):
        return None
    with contextlib.suppress(ValueError):
        return base64.b64decode(auth[6:]).decode().split(":", 1)[0] or None
    return None


class EnvdBase:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def sandbox(self, ctx: RequestContext) -> SandboxRecord:
        h = ctx.request_headers
        sbx = self.rt.find(h.get("e2b-sandbox-id") or "")
        if sbx is None or sbx.state != "running":
            raise ConnectError(Code.UNAVAILABLE, "The sandbox was not found")
        if h.get("x-access-token") != sbx.access_token:
            raise ConnectError(Code.UNAUTHENTICATED, "invalid or missing access token")
        return sbx

    def user(self, sbx: SandboxRecord, ctx: RequestContext) -> User:
        name = _basic_user(ctx.request_headers.get("authorization")) or sbx.template.user
        try:
            return sbx.runtime.user(name)
        except KeyError as e:
            raise ConnectError(Code.INVALID_ARGUMENT, f"user '{name}' does not exist") from e


async def _write_all(fd: int, data: bytes) -> None:
    """Write without blocking the event loop (a process may not read its input for a while;
    a terminal's master shares its non-blocking flag with the output reader)."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    view = memoryview(data)
    writable = asyncio.Event()
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            writable.clear()
            loop.add_writer(fd, writable.set)
            try:
                await writable.wait()
            finally:
                loop.remove_writer(fd)


def _pty_size(pty: ppb.PTY | None) -> tuple[int, int]:
    """(rows, cols) of a PTY request, 24x80 if unset."""
    size = pty.size if pty is not None else None
    return (size.rows or 24, size.cols or 80) if size is not None else (24, 80)


def _event(kind: str, value: Any) -> ppb.ProcessEvent:
    if kind == "start":
        return ppb.ProcessEvent(event=Oneof("start", ppb.ProcessEvent.StartEvent(pid=value)))
    if kind == "end":
        end = ppb.ProcessEvent.EndEvent(
            exit_code=value, exited=value >= 0, status=f"exit status {value}"
        )
        if value < 0:
            end = ppb.ProcessEvent.EndEvent(
                exit_code=-1, exited=False, status=f"signal: {signal.Signals(-value).name.lower()}"
            )
        return ppb.ProcessEvent(event=Oneof("end", end))
    if kind == "keepalive":
        return ppb.ProcessEvent(event=Oneof("keepalive", ppb.ProcessEvent.KeepAlive()))
    return ppb.ProcessEvent(
        event=Oneof("data", ppb.ProcessEvent.DataEvent(output=Oneof(kind, value)))
    )


class ProcessService(EnvdBase):
    """process.Process."""

    def _find(self, sbx: SandboxRecord, selector: Any) -> Proc:
        procs = sbx.runtime.procs
        match selector:
            case Oneof(field="pid", value=pid) if pid in procs:
                return procs[pid]
            case Oneof(field="tag", value=tag):
                for p in procs.values():
                    if p.tag == tag:
                        return p
        raise ConnectError(Code.NOT_FOUND, "process not found")

    async def list(self, request: ppb.ListRequest, ctx: RequestContext) -> ppb.ListResponse:
        sbx = self.sandbox(ctx)
        infos = [
            ppb.ProcessInfo(
                config=ppb.ProcessConfig(cmd=p.cmd, args=p.args, envs=p.envs, cwd=p.cwd),
                pid=p.pid,
                tag=p.tag,
            )
            for p in sbx.runtime.procs.values()
            if not p.done.is_set()
        ]
        return ppb.ListResponse(processes=infos)

    async def _stream(
        self, proc: Proc, resp: type, ctx: RequestContext, kill_at_deadline: SandboxRecord | None
    ) -> AsyncIterator[Any]:
        q: asyncio.Queue = asyncio.Queue()
        proc.subscribers.append(q)
        killer = None
        timeout_ms = ctx.timeout_ms
        if kill_at_deadline is not None and timeout_ms:

            async def kill_later() -> None:
                await asyncio.sleep(timeout_ms / 1000)
                with contextlib.suppress(SandboxError):
                    await kill_at_deadline.runtime.signal(proc.pid, signal.SIGKILL)

            killer = asyncio.get_running_loop().create_task(kill_later())
        try:
            yield resp(event=_event("start", proc.pid))
            if proc.done.is_set() and proc.exit_code is not None and q.empty():
                yield resp(event=_event("end", proc.exit_code))
                return
            while True:
                try:
                    kind, data = await asyncio.wait_for(q.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield resp(event=_event("keepalive", None))
                    continue
                yield resp(event=_event(kind, data))
                if kind == "end":
                    return
        finally:
            if killer:
                killer.cancel()
            with contextlib.suppress(ValueError):
                proc.subscribers.remove(q)

    async def start(self, request: ppb.StartRequest, ctx: RequestContext) -> AsyncIterator[Any]:
        sbx = self.sandbox(ctx)
        user = self.user(sbx, ctx)
        pty = _pty_size(request.pty) if request.has_field("pty") else None
        cfg = request.process
        if cfg is None or not cfg.cmd:
            raise ConnectError(Code.INVALID_ARGUMENT, "process.cmd is required")
        envs = {**sbx.template.envs, **sbx.env_vars, **dict(cfg.envs)}
        cwd = cfg.cwd if cfg.has_field("cwd") and cfg.cwd else sbx.template.workdir
        try:
            proc = await sbx.runtime.spawn(
                cfg.cmd,
                list(cfg.args),
                envs,
                cwd,
                user,
                tag=request.tag if request.has_field("tag") else None,
                stdin=request.has_field("stdin") and request.stdin,
                pty=pty,
            )
        except SandboxError as e:
            raise ConnectError(Code.UNAVAILABLE, str(e)) from e
        proc.envs = dict(cfg.envs)
        async for ev in self._stream(proc, ppb.StartResponse, ctx, sbx):
            yield ev

    async def connect(self, request: ppb.ConnectRequest, ctx: RequestContext) -> AsyncIterator[Any]:
        sbx = self.sandbox(ctx)
        proc = self._find(sbx, request.process.selector if request.process else None)
        async for ev in self._stream(proc, ppb.ConnectResponse, ctx, None):
            yield ev

    async def update(self, request: ppb.UpdateRequest, ctx: RequestContext) -> ppb.UpdateResponse:
        """Resize a process's terminal."""
        sbx = self.sandbox(ctx)
        proc = self._find(sbx, request.process.selector if request.process else None)
        if not request.has_field("pty") or not proc.pty or proc.stdin_fd is None:
            raise ConnectError(Code.INVALID_ARGUMENT, "the process has no terminal to resize")
        rows, cols = _pty_size(request.pty)
        fcntl.ioctl(proc.stdin_fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        return ppb.UpdateResponse()

    async def send_signal(
        self, request: ppb.SendSignalRequest, ctx: RequestContext
    ) -> ppb.SendSignalResponse:
        sbx = self.sandbox(ctx)
        proc = self._find(sbx, request.process.selector if request.process else None)
        sig = {ppb.Signal.SIGKILL: signal.SIGKILL, ppb.Signal.SIGTERM: signal.SIGTERM}.get(
            request.signal
        )
        if sig is None:
            raise ConnectError(Code.INVALID_ARGUMENT, "unsupported signal")
        try:
            await sbx.runtime.signal(proc.pid, sig)
        except SandboxError as e:
            raise ConnectError(Code.UNAVAILABLE, str(e)) from e
        return ppb.SendSignalResponse()

    async def _write_stdin(self, proc: Proc, data: ppb.ProcessInput | None) -> None:
        match data.input if data else None:
            case Oneof(field="stdin" | "pty" as kind, value=chunk):
                if proc.stdin_fd is None or (kind == "pty") != proc.pty:
                    raise ConnectError(Code.FAILED_PRECONDITION, f"{kind} input is not open")
                try:
                    await _write_all(proc.stdin_fd, chunk)
                except OSError as e:  # the process closed its input or exited
                    raise ConnectError(Code.FAILED_PRECONDITION, f"{kind}: {e.strerror}") from e
            case _:
                raise ConnectError(Code.INVALID_ARGUMENT, "stdin or pty input expected")

    async def send_input(
        self, request: ppb.SendInputRequest, ctx: RequestContext
    ) -> ppb.SendInputResponse:
        sbx = self.sandbox(ctx)
        proc = self._find(sbx, request.process.selector if request.process else None)
        await self._write_stdin(proc, request.input)
        return ppb.SendInputResponse()

    async def stream_input(
        self, request: AsyncIterator[ppb.StreamInputRequest], ctx: RequestContext
    ) -> ppb.StreamInputResponse:
        sbx = self.sandbox(ctx)
        proc: Proc | None = None
        async for msg in request:
            match msg.event:
                case Oneof(field="start", value=start):
                    proc = self._find(sbx, start.process.selector if start.process else None)
                case Oneof(field="data", value=data) if proc is not None:
                    await self._write_stdin(proc, data.input)
        return ppb.StreamInputResponse()

    async def close_stdin(
        self, request: ppb.CloseStdinRequest, ctx: RequestContext
    ) -> ppb.CloseStdinResponse:
        sbx = self.sandbox(ctx)
        proc = self._find(sbx, request.process.selector if request.process else None)
        if proc.stdin_fd is not None:
            os.close(proc.stdin_fd)
            proc.stdin_fd = None
        return ppb.CloseStdinResponse()


def _fs_error(e: OSError, path: str) -> ConnectError:
    if e.errno == errno.ENOENT:
        return ConnectError(Code.NOT_FOUND, f"path '{path}' does not exist")
    if e.errno == errno.EEXIST:
        return ConnectError(Code.ALREADY_EXISTS, f"path '{path}' already exists")
    if e.errno in (errno.EACCES, errno.EPERM):
        return ConnectError(Code.PERMISSION_DENIED, f"permission denied: '{path}'")
    if e.errno in (errno.ENOTDIR, errno.EISDIR, errno.ENOTEMPTY, errno.EINVAL):
        return ConnectError(Code.INVALID_ARGUMENT, f"{e.strerror}: '{path}'")
    return ConnectError(Code.INTERNAL, f"{e.strerror}: '{path}'")


def _owner(host_uid: int, users: dict[int, str]) -> str:
    """The sandbox's name for a host uid of its id range."""
    uid = host_uid - ID_BASE if 0 <= host_uid - ID_BASE < ID_COUNT else 65534
    return users.get(uid, str(uid))


class FilesystemService(EnvdBase):
    """filesystem.Filesystem (Stat, ListDir, MakeDir, Remove, Move)."""

    def _entry(
        self, sbx: SandboxRecord, path: str, user: User, users: dict[int, str]
    ) -> fpb.EntryInfo:
        s = sbxfs.lstat(sbx.runtime, path, user)
        is_link = st.S_ISLNK(s.st_mode)
        target = None
        ftype_mode = s.st_mode
        if is_link:
            target = sbxfs.readlink(sbx.runtime, path, user)
            with contextlib.suppress(OSError):
                fd = sbxfs.open_path(sbx.runtime, path, user)
                ftype_mode = os.fstat(fd).st_mode
                os.close(fd)
        ftype = (
            fpb.FileType.DIRECTORY
            if st.S_ISDIR(ftype_mode)
            else fpb.FileType.FILE
            if st.S_ISREG(ftype_mode)
            else fpb.FileType.UNSPECIFIED
        )
        gid = s.st_gid - ID_BASE
        try:
            group = grp.getgrgid(gid).gr_name if gid == 0 else _owner(s.st_gid, users)
        except KeyError:
            group = str(gid)
        return fpb.EntryInfo(
            name=posixpath.basename(path) or "/",
            type=ftype,
            path=path,
            size=s.st_size,
            mode=st.S_IMODE(s.st_mode),
            permissions=st.filemode(s.st_mode),
            owner=_owner(s.st_uid, users),
            group=group,
            modified_time=Timestamp.from_datetime(datetime.fromtimestamp(s.st_mtime, UTC)),
            symlink_target=target,
            is_symlink=is_link,
        )

    def _users(self, sbx: SandboxRecord) -> dict[int, str]:
        try:
            return {u.uid: u.name for u in sbxfs.read_passwd(sbx.runtime)}
        except OSError:
            return {}

    async def stat(self, request: fpb.StatRequest, ctx: RequestContext) -> fpb.StatResponse:
        sbx = self.sandbox(ctx)
        user = self.user(sbx, ctx)
        path = sbxfs.resolve(request.path, user)
        try:
            return fpb.StatResponse(entry=self._entry(sbx, path, user, self._users(sbx)))
        except OSError as e:
            raise _fs_error(e, path) from e

    async def list_dir(
        self, request: fpb.ListDirRequest, ctx: RequestContext
    ) -> fpb.ListDirResponse:
        sbx = self.sandbox(ctx)
        user = self.user(sbx, ctx)
        path = sbxfs.resolve(request.path, user)
        depth = request.depth or 1
        users = self._users(sbx)
        out: list[fpb.EntryInfo] = []

        def walk(d: str, level: int) -> None:
            for name in sbxfs.listdir(sbx.runtime, d, user):
                child = posixpath.join(d, name)
                entry = self._entry(sbx, child, user, users)
                out.append(entry)
                if level < depth and entry.type == fpb.FileType.DIRECTORY and not entry.is_symlink:
                    walk(child, level + 1)

        try:
            if not st.S_ISDIR(sbxfs.lstat(sbx.runtime, path, user).st_mode) and path != "/":
                fd = sbxfs.open_path(sbx.runtime, path, user)
                is_dir = st.S_ISDIR(os.fstat(fd).st_mode)
                os.close(fd)
                if not is_dir:
                    raise ConnectError(Code.INVALID_ARGUMENT, f"path '{path}' is not a directory")
            walk(path, 1)
        except OSError as e:
            raise _fs_error(e, path) from e
        return fpb.ListDirResponse(entries=out)

    async def make_dir(
        self, request: fpb.MakeDirRequest, ctx: RequestContext
    ) -> fpb.MakeDirResponse:
        sbx = self.sandbox(ctx)
        user = self.user(sbx, ctx)
        path = sbxfs.resolve(request.path, user)
        try:
            if not sbxfs.makedirs(sbx.runtime, path, user):
                raise ConnectError(Code.ALREADY_EXISTS, f"directory '{path}' already exists")
            return fpb.MakeDirResponse(entry=self._entry(sbx, path, user, self._users(sbx)))
        except OSError as e:
            raise _fs_error(e, path) from e

    async def remove(self, request: fpb.RemoveRequest, ctx: RequestContext) -> fpb.RemoveResponse:
        sbx = self.sandbox(ctx)
        user = self.user(sbx, ctx)
        path = sbxfs.resolve(request.path, user)
        try:
            sbxfs.remove(sbx.runtime, path, user)
        except OSError as e:
            raise _fs_error(e, path) from e
        return fpb.RemoveResponse()

    async def move(self, request: fpb.MoveRequest, ctx: RequestContext) -> fpb.MoveResponse:
        sbx = self.sandbox(ctx)
        user = self.user(sbx, ctx)
        src = sbxfs.resolve(request.source, user)
        dst = sbxfs.resolve(request.destination, user)
        try:
            sbxfs.move(sbx.runtime, src, dst, user)
            return fpb.MoveResponse(entry=self._entry(sbx, dst, user, self._users(sbx)))
        except OSError as e:
            raise _fs_error(e, src) from e

    def _watch(self, sbx: SandboxRecord, ctx: RequestContext, path: str, rec: bool) -> Watcher:
        user = self.user(sbx, ctx)
        path = sbxfs.resolve(path, user)
        try:
            return Watcher(sbx.runtime, path, user, rec)
        except OSError as e:
            raise _fs_error(e, path) from e

    async def watch_dir(
        self, request: fpb.WatchDirRequest, ctx: RequestContext
    ) -> AsyncIterator[fpb.WatchDirResponse]:
        sbx = self.sandbox(ctx)
        w = self._watch(sbx, ctx, request.path, request.recursive)
        key = secrets.token_hex(8)
        sbx.runtime.watchers[key] = w
        try:
            yield fpb.WatchDirResponse(event=Oneof("start", fpb.WatchDirResponse.StartEvent()))
            while w.fd >= 0:
                try:
                    ev = await asyncio.wait_for(w.events.get(), KEEPALIVE_S)
                except TimeoutError:
                    keep = fpb.WatchDirResponse.KeepAlive()
                    yield fpb.WatchDirResponse(event=Oneof("keepalive", keep))
                    continue
                yield fpb.WatchDirResponse(event=Oneof("filesystem", ev))
        finally:
            w.close()
            sbx.runtime.watchers.pop(key, None)

    async def create_watcher(
        self, request: fpb.CreateWatcherRequest, ctx: RequestContext
    ) -> fpb.CreateWatcherResponse:
        sbx = self.sandbox(ctx)
        key = secrets.token_hex(8)
        sbx.runtime.watchers[key] = self._watch(sbx, ctx, request.path, request.recursive)
        return fpb.CreateWatcherResponse(watcher_id=key)

    def _watcher(self, sbx: SandboxRecord, key: str) -> Watcher:
        w = sbx.runtime.watchers.get(key)
        if not isinstance(w, Watcher):
            raise ConnectError(Code.NOT_FOUND, f"watcher '{key}' not found")
        return w

    async def get_watcher_events(
        self, request: fpb.GetWatcherEventsRequest, ctx: RequestContext
    ) -> fpb.GetWatcherEventsResponse:
        sbx = self.sandbox(ctx)
        return fpb.GetWatcherEventsResponse(events=self._watcher(sbx, request.watcher_id).drain())

    async def remove_watcher(
        self, request: fpb.RemoveWatcherRequest, ctx: RequestContext
    ) -> fpb.RemoveWatcherResponse:
        sbx = self.sandbox(ctx)
        self._watcher(sbx, request.watcher_id).close()
        sbx.runtime.watchers.pop(request.watcher_id, None)
        return fpb.RemoveWatcherResponse()


class EnvdHttp:
    """/health and /files."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def _user(self, sbx: SandboxRecord, request: Request) -> User:
        name = (
            request.query_params.get("username")
            or _basic_user(request.headers.get("authorization"))
            or sbx.template.user
        )
        try:
            return sbx.runtime.user(name)
        except KeyError:
            raise FileError(400, f"user '{name}' does not exist") from None

    async def files_get(self, sbx: SandboxRecord, request: Request) -> Response:
        user = self._user(sbx, request)
        path = sbxfs.resolve(request.query_params.get("path", ""), user)
        try:
            fd = sbxfs.open_read(sbx.runtime, path, user)
        except FileNotFoundError:
            return JSONResponse({"code": 404, "message": f"path '{path}' does not exist"}, 404)
        except IsADirectoryError:
            return JSONResponse({"code": 400, "message": f"path '{path}' is a directory"}, 400)
        except OSError as e:
            return JSONResponse({"code": 500, "message": f"{e.strerror}: '{path}'"}, 500)
        f = os.fdopen(fd, "rb")
        size = os.fstat(fd).st_size

        async def body() -> AsyncIterator[bytes]:
            loop = asyncio.get_running_loop()
            try:
                while chunk := await loop.run_in_executor(None, f.read, 1 << 20):
                    yield chunk
            finally:
                f.close()

        if size <= 4 << 20:
            data = f.read()
            f.close()
            return Response(data, media_type="application/octet-stream")
        return StreamingResponse(body(), media_type="application/octet-stream")

    async def files_post(self, sbx: SandboxRecord, request: Request) -> Response:
        user = self._user(sbx, request)
        ctype = request.headers.get("content-type", "")
        written: list[tuple[str, list[bytes]]] = []
        if ctype.startswith("multipart/form-data"):
            raw = await request.body()
            msg = BytesParser(policy=HTTP).parsebytes(
                f"Content-Type: {ctype}\r\n\r\n".encode() + raw
            )
            default = request.query_params.get("path")
            for part in msg.iter_parts():
                name = part.get_filename() or default
                if not name:
                    raise FileError(400, "missing file path")
                target = default if default and len(written) == 0 else name
                written.append((target, [part.get_payload(decode=True) or b""]))
        else:
            path = request.query_params.get("path")
            if not path:
                raise FileError(400, "missing path")
            data = await request.body()
            if request.headers.get("content-encoding") == "gzip":
                import gzip

                data = gzip.decompress(data)
            written.append((path, [data]))
        out = []
        for raw_path, chunks in written:
            path = sbxfs.resolve(raw_path, user)
            try:
                await asyncio.get_running_loop().run_in_executor(
                    None, sbxfs.write_file, sbx.runtime, path, user, chunks
                )
            except IsADirectoryError:
                raise FileError(400, f"path '{path}' is a directory") from None
            except PermissionError:
                raise FileError(403, f"permission denied: '{path}'") from None
            except OSError as e:
                raise FileError(500, f"{e.strerror}: '{path}'") from None
            out.append({"name": posixpath.basename(path), "type": "file", "path": path})
        return JSONResponse(out)


class FileError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def build_envd_apps(
    rt: Runtime,
) -> tuple[EnvdHttp, ProcessASGIApplication, FilesystemASGIApplication]:
    return (
        EnvdHttp(rt),
        ProcessASGIApplication(ProcessService(rt)),  # type: ignore[arg-type]
        FilesystemASGIApplication(FilesystemService(rt)),  # type: ignore[arg-type]
    )
