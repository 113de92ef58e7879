"""Templates: records, build execution (COPY/ENV/RUN/WORKDIR/USER into an overlay layer), cache.

A build runs in a build sandbox (with host network, for pip/npm/apt) whose overlay upper dir
is the new template layer. Base images map onto the host root filesystem: python, node,
debian, ubuntu and e2bdev/base images use the host's Debian userland and interpreters; other
distributions (alpine, fedora, arch, bun, private registries) are refused with a build error.
Layers are cached by the content hash of (parent, steps with file hashes, start/ready cmd)
and saved as tarballs under <state>/templates so templates survive a restart. Built-in
templates (`code_interpreter.py`) are built on first use, and their layers are also kept in a
cache shared by the host's servers; with `--share-builds` (tests, `make dev`) every template's
are, like a Docker build cache (skipCache bypasses it; unused layers go after 14 days).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import secrets
import shlex
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import code_interpreter, prom
from .isolation import Host
from .sandbox import SandboxRuntime
from .teams import DEFAULT_TEAM

log = logging.getLogger("e2b_local.builds")

HOST_BASES = ("python", "node", "debian", "ubuntu", "e2bdev/base", "e2bdev/code-interpreter")
DEFAULT_CPU = 2
DEFAULT_MEMORY_MB = 1024
READY_POLL_S = 0.5
READY_TIMEOUT_S = 600.0
SHARED_KEEP_DAYS = 14


class BuildError(Exception):
    def __init__(self, message: str, step: str | None = None) -> None:
        super().__init__(message)
        self.step = step


class NotFound(Exception):
    pass


class Forbidden(Exception):
    """Another team's template, named by its ID (E2B's 403)."""


def _ts() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class BuildRecord:
    build_id: str
    template_id: str
    status: str = "waiting"
    logs: list[dict[str, Any]] = field(default_factory=list)
    reason: dict[str, Any] | None = None

    def log(self, message: str, level: str = "info", step: str | None = None) -> None:
        entry: dict[str, Any] = {"timestamp": _ts(), "level": level, "message": message}
        if step is not None:
            entry["step"] = step
        self.logs.append(entry)


@dataclass
class TemplateRecord:
    template_id: str
    names: list[str]
    team: str | None = None  # None: public (base, built-ins), usable by every team
    tags: list[str] = field(default_factory=lambda: ["default"])
    cpu_count: int = DEFAULT_CPU
    memory_mb: int = DEFAULT_MEMORY_MB
    layers: list[str] = field(default_factory=list)
    envs: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    user: str = "user"
    start_cmd: str | None = None
    ready_cmd: str | None = None
    build_id: str = ""
    build_status: str = "waiting"
    created_at: str = field(default_factory=_ts)
    updated_at: str = field(default_factory=_ts)
    spawn_count: int = 0
    last_spawned_at: Any = None
    build_count: int = 0
    builds: dict[str, BuildRecord] = field(default_factory=dict, repr=False)


class TemplateStore:
    """Template registry, uploaded build files and the build runner."""

    def __init__(
        self,
        state_dir: Path,
        host: Host,
        layer_cache: Path | None = None,
        share_builds: bool = False,
    ) -> None:
        self.state_dir = state_dir
        self.host = host
        self.layer_cache = layer_cache
        self.share_builds = share_builds  # user templates' layers go through layer_cache too
        self._builtin_lock = asyncio.Lock()
        self.files_dir = state_dir / "files"
        self.saved_dir = state_dir / "templates"
        for d in (self.files_dir, self.saved_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.templates: dict[str, TemplateRecord] = {}
        self.tasks: set[asyncio.Task] = set()
        base = TemplateRecord("base", names=["base"], build_id="base", build_status="ready")
        self.templates["base"] = base

    # -- registry ---------------------------------------------------------------------------

    def attach(self) -> None:
        """Restore saved templates into the (fresh) layer filesystem."""
        (self.host.run_dir / "templates").mkdir(exist_ok=True)
        index = self.saved_dir / "index.json"
        if not index.exists():
            return
        for raw in json.loads(index.read_text()):
            rec = TemplateRecord(**{k: v for k, v in raw.items() if k != "builds"})
            if "team" not in raw and not set(rec.names) & set(code_interpreter.NAMES):
                rec.team = DEFAULT_TEAM  # saved before teams: the server key's
            try:
                for key in rec.layers:
                    self._restore_layer(key)
            except (OSError, subprocess.CalledProcessError) as e:
                log.warning("dropping template %s: its layer is unusable (%s)", rec.template_id, e)
                continue
            build = BuildRecord(rec.build_id, rec.template_id, status="ready")
            build.log("restored from a previous run")
            rec.builds = {rec.build_id: build}
            self.templates[rec.template_id] = rec

    def _save(self) -> None:
        out = []
        for rec in self.templates.values():
            if rec.template_id != "base" and rec.build_status == "ready":
                d = asdict(rec)
                d.pop("builds")
                out.append(d)
        (self.saved_dir / "index.json").write_text(json.dumps(out, indent=1, default=str))

    def layer_dir(self, key: str) -> Path:
        return self.host.run_dir / "templates" / key

    def _restore_layer(self, key: str) -> None:
        target = self.layer_dir(key)
        if target.exists():
            return
        target.mkdir(parents=True)
        subprocess.run(
            [
                "tar",
                "--xattrs",
                "--xattrs-include=trusted.*",
                "-C",
                str(target),
                "-xpf",
                str(self.saved_dir / f"{key}.tar"),
            ],
            check=True,
        )

    def lowers(self, rec: TemplateRecord) -> list[str]:
        return [str(self.layer_dir(k)) for k in rec.layers] + [
            str(self.host.mask),
            str(self.host.hostroot),
        ]

    def resolve(self, ref: str, team: str | None) -> tuple[TemplateRecord, str | None]:
        """Find a ready template of the team (or a public one) by ID, name or alias (an
        optional `:tag` is ignored); ApiError 404, or 403 for another team's ID."""
        from .runtime import ApiError

        name = ref.split(":", 1)[0] if "/" not in ref else ref
        try:
            rec = self.find(name, team)
        except Forbidden as e:
            raise ApiError(403, f"You don't have access to this sandbox template ({ref})") from e
        except NotFound:
            rec = None
        if rec is None or rec.build_status != "ready":
            raise ApiError(404, f"template '{ref}' not found")
        return rec, name if name != rec.template_id else None

    def _named(self, name: str, team: str | None) -> TemplateRecord | None:
        return next(
            (t for t in self.templates.values() if t.team == team and name in t.names), None
        )

    def find(self, ref: str, team: str | None) -> TemplateRecord:
        """A template by ID (Forbidden if another team's) or by name, the team's own names
        first, then the public ones: each team has its own names, as E2B's namespaces."""
        rec = self.templates.get(ref)
        if rec is not None:
            if rec.team not in (None, team):
                raise Forbidden(ref)
            return rec
        rec = (self._named(ref, team) if team is not None else None) or self._named(ref, None)
        if rec is None:
            raise NotFound(ref)
        return rec

    def visible(self, team: str) -> list[TemplateRecord]:
        """The team's templates and the public ones."""
        return [t for t in self.templates.values() if t.team in (None, team)]

    async def ensure_builtin(self, ref: str) -> None:
        """Build a built-in template (or restore it from the shared cache) on first use."""
        name = ref.split(":", 1)[0]
        if name not in code_interpreter.NAMES:
            return
        async with self._builtin_lock:
            with contextlib.suppress(NotFound):
                if self.find(name, None).build_status == "ready":
                    return
            rec, build = self.request_build(code_interpreter.NAMES[0], None, None, None, None)
            rec.names = list(code_interpreter.NAMES)
            log.info("preparing the built-in template %s (cached layer or build)", name)
            await self._build(rec, build, code_interpreter.build_spec(), shared=True)
            if build.status != "ready":
                reason = (build.reason or {}).get("message", "unknown error")
                raise BuildError(f"the built-in template '{name}' failed to build: {reason}")

    def request_build(
        self,
        name: str,
        tags: list[str] | None,
        cpu: int | None,
        mem: int | None,
        team: str | None,
    ) -> tuple[TemplateRecord, BuildRecord]:
        """A new build of the team's template ``name`` (created if the team has none)."""
        name, _, tag = name.partition(":")
        if name in self.templates["base"].names:
            raise BuildError("the name 'base' is reserved")
        rec = self._named(name, team)
        if rec is None:
            rec = TemplateRecord(
                secrets.token_hex(10), names=[name], team=team, build_status="waiting"
            )
            self.templates[rec.template_id] = rec
        rec.tags = tags or ([tag] if tag else ["default"])
        rec.cpu_count = cpu or DEFAULT_CPU
        rec.memory_mb = mem or DEFAULT_MEMORY_MB
        build = BuildRecord(secrets.token_hex(10), rec.template_id)
        rec.builds[build.build_id] = build
        rec.build_count += 1
        if rec.build_status != "ready":
            rec.build_id = build.build_id
        return rec, build

    def delete(self, template_id: str, in_use: set[str]) -> None:
        rec = self.templates[template_id]
        if rec.template_id == "base":
            raise BuildError("the base template cannot be deleted")
        del self.templates[rec.template_id]
        self._save()
        used = {k for t in self.templates.values() for k in t.layers} | in_use
        for key in rec.layers:
            if key not in used:
                shutil.rmtree(self.layer_dir(key), ignore_errors=True)
                with contextlib.suppress(FileNotFoundError):
                    (self.saved_dir / f"{key}.tar").unlink()

    def file_path(self, files_hash: str) -> Path:
        if not files_hash.isalnum():
            raise BuildError(f"bad files hash {files_hash!r}")
        return self.files_dir / f"{files_hash}.tar"

    # -- building ---------------------------------------------------------------------------

    def start_build(self, rec: TemplateRecord, build: BuildRecord, spec: dict[str, Any]) -> None:
        build_task = self._build(rec, build, spec, shared=self.share_builds)
        task = asyncio.get_running_loop().create_task(build_task)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def shutdown(self) -> None:
        for t in list(self.tasks):
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def _parent(self, spec: dict[str, Any], team: str | None) -> TemplateRecord:
        if spec.get("fromTemplate"):
            try:
                return self.resolve(spec["fromTemplate"], team)[0]
            except Exception as e:
                raise BuildError(f"base template '{spec['fromTemplate']}' not found") from e
        image = spec.get("fromImage") or "e2bdev/base"
        if spec.get("fromImageRegistry"):
            raise BuildError("private registries are not emulated by e2b-local")
        repo = image.split("@")[0].rsplit(":", 1)[0].removeprefix("docker.io/")
        repo = repo.removeprefix("library/")
        if not any(repo == b or repo.startswith(b + "/") for b in HOST_BASES):
            raise BuildError(
                f"base image '{image}' is not emulated: e2b-local maps only python, node, "
                "debian, ubuntu and e2bdev/base images onto the host's Debian root filesystem"
            )
        return self.templates["base"]

    def _cache_key(self, parent: TemplateRecord, spec: dict[str, Any]) -> str:
        steps = [
            {"type": s.get("type"), "args": s.get("args"), "filesHash": s.get("filesHash")}
            for s in spec.get("steps") or []
        ]
        payload = {
            "parent": parent.layers,
            "steps": steps,
            "start": spec.get("startCmd"),
            "ready": spec.get("readyCmd"),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]

    async def _build(
        self, rec: TemplateRecord, build: BuildRecord, spec: dict[str, Any], shared: bool = False
    ) -> None:
        """Build (or take from cache) the template's layer; `shared` uses the host-wide cache."""
        build.status = "building"
        t0 = time.monotonic()
        try:
            parent = self._parent(spec, rec.team)
            key = self._cache_key(parent, spec)
            force = bool(spec.get("force")) or any(s.get("force") for s in spec.get("steps") or [])
            state = {"envs": dict(parent.envs), "workdir": parent.workdir, "user": parent.user}
            cached = self.layer_dir(key).exists() and (self.saved_dir / f"{key}.tar").exists()
            loop = asyncio.get_running_loop()
            if not cached and shared and not force:
                cached = await loop.run_in_executor(None, self._from_shared, key)
            if cached and not force:
                build.log(f"CACHED layer {key}: all steps unchanged")
                for s in spec.get("steps") or []:
                    self._apply_meta(s, state)
            else:
                shutil.rmtree(self.layer_dir(key), ignore_errors=True)
                await self._run_steps(rec, build, spec, parent, key, state)
                if shared:
                    await loop.run_in_executor(None, self._to_shared, key)
            rec.layers = [key, *parent.layers]
            rec.envs, rec.workdir, rec.user = state["envs"], state["workdir"], state["user"]
            rec.start_cmd = spec.get("startCmd") or parent.start_cmd
            rec.ready_cmd = spec.get("readyCmd") or parent.ready_cmd
            if rec.start_cmd and not rec.ready_cmd:
                rec.ready_cmd = "sleep 20"
            rec.build_id = build.build_id
            rec.build_status = "ready"
            rec.updated_at = _ts()
            build.status = "ready"
            build.log(f"Build finished in {time.monotonic() - t0:.1f}s")
            prom.BUILDS.labels("ready").observe(time.monotonic() - t0)
            self._save()
        except asyncio.CancelledError:
            build.status = "error"
            build.reason = {"message": "build cancelled: server shutting down"}
            raise
        except Exception as e:
            step = e.step if isinstance(e, BuildError) else None
            build.log(f"Build failed: {e}", "error", step)
            build.status = "error"
            build.reason = {"message": str(e)}
            prom.BUILDS.labels("error").observe(time.monotonic() - t0)
            if step is not None:
                build.reason["step"] = step
            if rec.build_status != "ready":
                rec.build_status = "error"

    @staticmethod
    def _apply_meta(step: dict[str, Any], state: dict[str, Any]) -> bool:
        """Apply ENV/WORKDIR/USER to the build state; True if nothing else is to run."""
        kind, args = step.get("type"), list(step.get("args") or [])
        if kind == "ENV":
            state["envs"].update(dict(zip(args[0::2], args[1::2], strict=False)))
            return True
        if kind == "USER":
            state["user"] = args[0]
            return True
        if kind == "WORKDIR":
            state["workdir"] = args[0]
            return True
        return False

    async def _run_steps(
        self,
        rec: TemplateRecord,
        build: BuildRecord,
        spec: dict[str, Any],
        parent: TemplateRecord,
        key: str,
        state: dict[str, Any],
    ) -> None:
        layer = self.layer_dir(key)
        sbx = SandboxRuntime(
            "b" + build.build_id,
            self.host,
            self.lowers(parent),
            internet=True,
            memory_mb=max(rec.memory_mb, 2048),
            cpu_count=rec.cpu_count,
            upper=layer,
        )
        try:
            await sbx.start()
            steps = spec.get("steps") or []
            for i, step in enumerate(steps, 1):
                label = str(i)
                kind, args = step.get("type"), list(step.get("args") or [])
                build.log(f"[{i}/{len(steps)}] {kind} {' '.join(map(str, args))}", step=label)
                if kind == "WORKDIR":
                    # Created as root from the old workdir, as Docker's WORKDIR does.
                    script = f"mkdir -p {shlex.quote(args[0])}"
                    await self._exec(sbx, build, label, script, "root", state)
                if self._apply_meta(step, state):
                    continue
                if kind == "RUN":
                    user = args[1] if len(args) > 1 and args[1] else state["user"]
                    await self._exec(sbx, build, label, args[0], user, state)
                elif kind == "COPY":
                    await self._copy(sbx, build, label, step, args, state)
                else:
                    raise BuildError(f"step {i}: unsupported instruction {kind}", label)
            if spec.get("startCmd"):
                await self._start_ready(sbx, build, spec, state)
        finally:
            await sbx.destroy()
        await asyncio.get_running_loop().run_in_executor(None, self._persist_layer, key)

    async def _exec(
        self,
        sbx: SandboxRuntime,
        build: BuildRecord,
        label: str,
        script: str,
        user: str,
        state: dict[str, Any],
        stdin_fd: int | None = None,
    ) -> None:
        try:
            u = sbx.user(user)
        except KeyError as e:
            raise BuildError(f"step {label}: unknown user '{user}'", label) from e
        lines: list[str] = []

        def out(line: str) -> None:
            lines.append(line)
            build.log(line, step=label)

        workdir = state["workdir"]
        rc = await sbx.run(script, u, state["envs"], workdir, on_output=out, stdin_fd=stdin_fd)
        if rc != 0:
            tail = "\n".join(lines[-30:])
            raise BuildError(
                f"step {label} failed: '{script}' exited with code {rc}:\n{tail}", label
            )

    async def _copy(
        self,
        sbx: SandboxRuntime,
        build: BuildRecord,
        label: str,
        step: dict[str, Any],
        args: list[str],
        state: dict[str, Any],
    ) -> None:
        src, dest = args[0], args[1]
        owner = args[2] if len(args) > 2 and args[2] else state["user"]
        mode = args[3] if len(args) > 3 and args[3] else None
        path = self.file_path(step.get("filesHash") or "")
        if not path.exists():
            raise BuildError(f"step {label}: files for COPY {src} were not uploaded", label)
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        fd = os.open(path, os.O_RDONLY)
        dest_q = shlex.quote(dest)
        script = f"""set -e; shopt -s globstar dotglob nullglob
tmp=$(mktemp -d); tar -x{"z" if gz else ""}f - -C "$tmp" --no-same-owner
cd "$tmp"; matches=({_glob_quote(src)})
[ ${{#matches[@]}} -gt 0 ] || {{ echo "COPY: no file matches {src}"; exit 1; }}
if [ ${{#matches[@]}} -eq 1 ] && [ -f "${{matches[0]}}" ] && [[ {dest_q} != */ ]]; then
  mkdir -p "$(dirname {dest_q})"; cp -a "${{matches[0]}}" {dest_q}; targets=({dest_q})
else
  mkdir -p {dest_q}; targets=()
  for m in "${{matches[@]}}"; do
    if [ -d "$m" ]; then cp -a "$m/." {dest_q}/; else cp -a "$m" {dest_q}/; fi
  done
  targets=({dest_q})
fi
{f'chown -R {shlex.quote(owner)} "${{targets[@]}}"' if owner else ""}
{f'chmod -R {shlex.quote(mode)} "${{targets[@]}}"' if mode else ""}
rm -rf "$tmp"
"""
        try:
            await self._exec(sbx, build, label, script, "root", state, stdin_fd=fd)
        finally:
            os.close(fd)

    async def _start_ready(
        self, sbx: SandboxRuntime, build: BuildRecord, spec: dict[str, Any], state: dict[str, Any]
    ) -> None:
        start, ready = spec["startCmd"], spec.get("readyCmd") or "sleep 20"
        user = sbx.user(state["user"])
        build.log(f"Running start command: {start}")
        proc = await sbx.spawn(
            "/bin/bash", ["-l", "-c", start], state["envs"], state["workdir"], user
        )
        q: asyncio.Queue = asyncio.Queue()
        proc.subscribers.append(q)
        deadline = time.monotonic() + READY_TIMEOUT_S
        build.log(f"Waiting for ready command: {ready}")
        while True:
            rc = await sbx.run(ready, user, state["envs"], state["workdir"], timeout=60)
            while not q.empty():
                kind, data = q.get_nowait()
                if kind in ("stdout", "stderr"):
                    build.log(data.decode(errors="replace").rstrip())
            if rc == 0:
                build.log("Template is ready")
                return
            if time.monotonic() > deadline:
                raise BuildError(f"ready command '{ready}' did not succeed within the build")
            await asyncio.sleep(READY_POLL_S)

    def _from_shared(self, key: str) -> bool:
        """Restore a layer from the shared cache, if it is there (marking it used)."""
        src = self.layer_cache / f"{key}.tar" if self.layer_cache else None
        if src is None or not src.exists():
            return False
        with contextlib.suppress(OSError):
            os.utime(src)
        tar = self.saved_dir / f"{key}.tar"
        try:
            os.link(src, tar)
        except FileExistsError:
            pass
        except OSError:  # another filesystem
            shutil.copyfile(src, tar)
        shutil.rmtree(self.layer_dir(key), ignore_errors=True)
        self._restore_layer(key)
        return True

    def _to_shared(self, key: str) -> None:
        """Publish a layer to the shared cache (atomically: readers see all of it or none)."""
        if self.layer_cache is None:
            return
        self.layer_cache.mkdir(parents=True, exist_ok=True)
        part = self.layer_cache / f".{key}.{secrets.token_hex(4)}.part"
        try:
            shutil.copyfile(self.saved_dir / f"{key}.tar", part)
            part.rename(self.layer_cache / f"{key}.tar")
        finally:
            part.unlink(missing_ok=True)
        self._prune_shared()

    def _prune_shared(self) -> None:
        """Drop shared layers unused for SHARED_KEEP_DAYS (tests publish one-off templates)."""
        assert self.layer_cache is not None
        horizon = time.time() - SHARED_KEEP_DAYS * 86400
        for tar in self.layer_cache.glob("*.tar"):
            with contextlib.suppress(OSError):
                if tar.stat().st_mtime < horizon:
                    tar.unlink()

    def _persist_layer(self, key: str) -> None:
        subprocess.run(
            [
                "tar",
                "--xattrs",
                "--xattrs-include=trusted.*",
                "-C",
                str(self.layer_dir(key)),
                "-cf",
                str(self.saved_dir / f"{key}.tar"),
                ".",
            ],
            check=True,
        )


def _glob_quote(pattern: str) -> str:
    """Quote a glob for bash, keeping *, ? and [...] active."""
    out = []
    for ch in pattern:
        out.append(ch if ch in "*?[]" else shlex.quote(ch) if not ch.isalnum() else ch)
    return "".join(out)
