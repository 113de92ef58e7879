"""Filesystem access to a sandbox from the server, confined to the sandbox's root.

Paths are resolved with openat2(RESOLVE_IN_ROOT) relative to /proc/<init>/root, so absolute
symlinks and `..` inside the sandbox can never reach the host's files.
"""

from __future__ import annotations

import ctypes
import os
import posixpath
import shutil
import stat as st
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .sandbox import SandboxRuntime, User

SYS_OPENAT2 = 437
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10
_libc = ctypes.CDLL(None, use_errno=True)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def open_in(root_fd: int, path: str, flags: int, mode: int = 0) -> int:
    """openat2(root_fd, path) with the sandbox root as '/'."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
    fd = _libc.syscall(
        SYS_OPENAT2,
        root_fd,
        path.encode() or b".",
        ctypes.byref(how),
        ctypes.sizeof(how),
    )
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return fd


def resolve(path: str, user: User) -> str:
    """Absolute, normalised sandbox path; relative paths are relative to the user's home."""
    if not path.startswith("/"):
        path = posixpath.join(user.home, path)
    return posixpath.normpath(path)


def _root(sbx: SandboxRuntime) -> int:
    if sbx.root_fd is None:
        raise FileNotFoundError("sandbox is not running")
    return sbx.root_fd


class Parent:
    """An O_PATH fd of a path's parent directory plus the leaf name, for *at() calls."""

    def __init__(self, sbx: SandboxRuntime, path: str) -> None:
        head, self.name = posixpath.split(path)
        if not self.name:
            head, self.name = "/", "."
        self.fd = open_in(_root(sbx), head, os.O_PATH | os.O_DIRECTORY)

    def __enter__(self) -> Parent:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


def read_passwd(sbx: SandboxRuntime) -> list[User]:
    from .sandbox import User

    fd = open_in(_root(sbx), "/etc/passwd", os.O_RDONLY)
    with os.fdopen(fd) as f:
        users = []
        for line in f:
            parts = line.rstrip("\n").split(":")
            if len(parts) >= 6 and parts[2].isdigit() and parts[3].isdigit():
                users.append(User(parts[0], int(parts[2]), int(parts[3]), parts[5] or "/"))
        return users


def makedirs(sbx: SandboxRuntime, path: str, user: User) -> bool:
    """mkdir -p inside the sandbox, new dirs owned by `user`; False if it already existed."""
    created = False
    cur = "/"
    for part in [p for p in path.split("/") if p]:
        with Parent(sbx, posixpath.join(cur, part)) as parent:
            try:
                os.mkdir(parent.name, 0o755, dir_fd=parent.fd)
                os.chown(parent.name, user.uid, user.gid, dir_fd=parent.fd, follow_symlinks=False)
                created = True
            except FileExistsError:
                pass
        cur = posixpath.join(cur, part)
    return created


def write_file(sbx: SandboxRuntime, path: str, user: User, chunks: list[bytes]) -> None:
    makedirs(sbx, posixpath.dirname(path), user)
    fd = open_in(_root(sbx), path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.fchown(fd, user.uid, user.gid)
        for c in chunks:
            view = memoryview(c)
            while view:
                n = os.write(fd, view)
                view = view[n:]
    finally:
        os.close(fd)


def open_read(sbx: SandboxRuntime, path: str) -> int:
    fd = open_in(_root(sbx), path, os.O_RDONLY)
    if st.S_ISDIR(os.fstat(fd).st_mode):
        os.close(fd)
        raise IsADirectoryError(21, "is a directory", path)
    return fd


def lstat(sbx: SandboxRuntime, path: str) -> os.stat_result:
    with Parent(sbx, path) as parent:
        return os.stat(parent.name, dir_fd=parent.fd, follow_symlinks=False)


def readlink(sbx: SandboxRuntime, path: str) -> str:
    with Parent(sbx, path) as parent:
        return os.readlink(parent.name, dir_fd=parent.fd)


def listdir(sbx: SandboxRuntime, path: str) -> list[str]:
    fd = open_in(_root(sbx), path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return sorted(os.listdir(fd))
    finally:
        os.close(fd)


def remove(sbx: SandboxRuntime, path: str) -> None:
    with Parent(sbx, path) as parent:
        s = os.stat(parent.name, dir_fd=parent.fd, follow_symlinks=False)
        if st.S_ISDIR(s.st_mode):
            shutil.rmtree(parent.name, dir_fd=parent.fd)
        else:
            os.unlink(parent.name, dir_fd=parent.fd)


def move(sbx: SandboxRuntime, src: str, dst: str) -> None:
    with Parent(sbx, src) as sp, Parent(sbx, dst) as dp:
        os.rename(sp.name, dp.name, src_dir_fd=sp.fd, dst_dir_fd=dp.fd)
