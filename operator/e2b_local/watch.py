"""`files.watch_dir`: inotify watches, from the server, on directories inside a sandbox.

A directory is opened through sbxfs (confined to the sandbox root, with the user's
permissions) and watched through its /proc/self/fd link, so a watch never follows a path
out of the sandbox. Event kinds map as envd's fsnotify does: create (and moved in), write,
remove, rename (moved away), chmod.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import posixpath
import stat
import struct

from e2b.envd.filesystem import filesystem_pb as fpb

from . import sbxfs
from .sandbox import SandboxRuntime, User

_libc = ctypes.CDLL(None, use_errno=True)
IN_MODIFY, IN_ATTRIB, IN_MOVED_FROM, IN_MOVED_TO = 0x2, 0x4, 0x40, 0x80
IN_CREATE, IN_DELETE, IN_ISDIR, IN_Q_OVERFLOW = 0x100, 0x200, 0x4000_0000, 0x4000
MASK = IN_MODIFY | IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
KINDS = (
    (IN_CREATE | IN_MOVED_TO, fpb.EventType.CREATE),
    (IN_MODIFY, fpb.EventType.WRITE),
    (IN_DELETE, fpb.EventType.REMOVE),
    (IN_MOVED_FROM, fpb.EventType.RENAME),
    (IN_ATTRIB, fpb.EventType.CHMOD),
)
HEADER = struct.Struct("iIII")
MAX_QUEUED = 10_000


class Watcher:
    """Watches one directory (recursively if asked); events queue until read."""

    def __init__(self, sbx: SandboxRuntime, path: str, user: User, recursive: bool) -> None:
        self.sbx, self.path, self.user, self.recursive = sbx, path, user, recursive
        fd = _libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.fd = fd
        self.dirs: dict[int, str] = {}  # watch descriptor -> path relative to the root
        self.events: asyncio.Queue[fpb.FilesystemEvent] = asyncio.Queue(MAX_QUEUED)
        try:
            self._watch("")
        except BaseException:
            os.close(fd)
            raise
        asyncio.get_running_loop().add_reader(fd, self._read)

    def _watch(self, rel: str, announce: bool = False) -> None:
        """Watch `rel` (and, recursively, its directories). `announce`: it is new, so what
        was made in it before its watch existed is reported as created (and written)."""
        dfd = sbxfs.open_dir(self.sbx, posixpath.join(self.path, rel), self.user)
        try:
            wd = _libc.inotify_add_watch(self.fd, f"/proc/self/fd/{dfd}".encode(), MASK)
            if wd < 0:
                raise OSError(ctypes.get_errno(), "inotify_add_watch", self.path)
            self.dirs[wd] = rel
            if not self.recursive:
                return
            for name in os.listdir(dfd):
                child = posixpath.join(rel, name)
                is_dir = _is_dir(dfd, name)
                if announce:
                    self._emit(child, fpb.EventType.CREATE)
                    if not is_dir and _size(dfd, name):
                        self._emit(child, fpb.EventType.WRITE)
                if is_dir:
                    self._watch(child, announce)
        finally:
            os.close(dfd)

    def _emit(self, name: str, kind: fpb.EventType) -> None:
        if not self.events.full():
            self.events.put_nowait(fpb.FilesystemEvent(name=name, type=kind))

    def _read(self) -> None:
        try:
            buf = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        off = 0
        while off < len(buf):
            wd, mask, _cookie, size = HEADER.unpack_from(buf, off)
            raw = buf[off + HEADER.size : off + HEADER.size + size]
            off += HEADER.size + size
            if wd not in self.dirs or mask & IN_Q_OVERFLOW:
                continue
            name = posixpath.join(self.dirs[wd], raw.rstrip(b"\0").decode(errors="replace"))
            for bits, kind in KINDS:
                if mask & bits:
                    self._emit(name, kind)
            if self.recursive and mask & IN_ISDIR and mask & (IN_CREATE | IN_MOVED_TO):
                with contextlib.suppress(OSError):
                    self._watch(name, announce=True)

    def drain(self) -> list[fpb.FilesystemEvent]:
        out = []
        while not self.events.empty():
            out.append(self.events.get_nowait())
        return out

    def close(self) -> None:
        if self.fd >= 0:
            asyncio.get_running_loop().remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1


def _size(dir_fd: int, name: str) -> int:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_size
    except OSError:
        return 0


def _is_dir(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False
