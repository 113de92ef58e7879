"""Filesystem access to a sandbox from the server, confined to the sandbox's root and user.

Paths are resolved with openat2(RESOLVE_IN_ROOT) relative to /proc/<init>/root, so absolute
symlinks and `..` inside the sandbox can never reach the host's files. Every access made for
a sandbox user other than root runs with that user's host ids as the thread's filesystem
ids (setfsuid/setfsgid/setgroups on the calling thread only), so the kernel checks the same
permissions it checks inside the sandbox: the default user cannot read /etc/shadow or write
/etc/profile.d. Root's accesses keep the server's credentials, confined by RESOLVE_IN_ROOT;
what root creates is owned by sandbox root.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import posixpath
import shutil
import stat as st
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .idmap import host_id

if TYPE_CHECKING:
    from .sandbox import SandboxRuntime, User

SYS_OPENAT2 = 437
_SYS_SETGROUPS, _SYS_SETFSUID, _SYS_SETFSGID = 116, 122, 123
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10
_libc = ctypes.CDLL(None, use_errno=True)
_SERVER_GROUPS = (ctypes.c_uint32 * max(1, len(os.getgroups())))(*os.getgroups())


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


@contextlib.contextmanager
def as_user(user: User) -> Iterator[None]:
    """Act on the filesystem as `user` on this thread (root: as the server)."""
    if user.uid == 0:
        yield
        return
    groups = (ctypes.c_uint32 * 1)(host_id(user.gid))
    _libc.syscall(_SYS_SETGROUPS, 1, groups)
    _libc.syscall(_SYS_SETFSGID, host_id(user.gid))
    _libc.syscall(_SYS_SETFSUID, host_id(user.uid))
    try:
        yield
    finally:
        _libc.syscall(_SYS_SETFSUID, 0)
        _libc.syscall(_SYS_SETFSGID, 0)
        _libc.syscall(_SYS_SETGROUPS, len(_SERVER_GROUPS), _SERVER_GROUPS)


def _own(user: User, fd: int | None = None, *, name: str = "", dir_fd: int | None = None) -> None:
    """Root's new files belong to sandbox root; a user's already have the user's ids."""
    if user.uid != 0:
        return
    if fd is not None:
        os.fchown(fd, host_id(0), host_id(0))
    else:
        os.chown(name, host_id(0), host_id(0), dir_fd=dir_fd, follow_symlinks=False)


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


def _makedirs(sbx: SandboxRuntime, path: str, user: User) -> bool:
    created = False
    cur = "/"
    for part in [p for p in path.split("/") if p]:
        with Parent(sbx, posixpath.join(cur, part)) as parent:
            try:
                os.mkdir(parent.name, 0o755, dir_fd=parent.fd)
                _own(user, name=parent.name, dir_fd=parent.fd)
                created = True
            except FileExistsError:
                pass
        cur = posixpath.join(cur, part)
    return created


def makedirs(sbx: SandboxRuntime, path: str, user: User) -> bool:
    """mkdir -p inside the sandbox as `user`; False if it already existed."""
    with as_user(user):
        return _makedirs(sbx, path, user)


def write_file(sbx: SandboxRuntime, path: str, user: User, chunks: list[bytes]) -> None:
    with as_user(user):
        _makedirs(sbx, posixpath.dirname(path), user)
        # O_NONBLOCK: a FIFO the sandbox put there fails instead of hanging the server.
        fd = open_in(_root(sbx), path, os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK, 0o644)
        try:
            if not st.S_ISREG(os.fstat(fd).st_mode):
                raise IsADirectoryError(21, "not a regular file", path)
            os.ftruncate(fd, 0)
            _own(user, fd)
            for c in chunks:
                view = memoryview(c)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
        finally:
            os.close(fd)


def open_read(sbx: SandboxRuntime, path: str, user: User) -> int:
    with as_user(user):
        fd = open_in(_root(sbx), path, os.O_RDONLY | os.O_NONBLOCK)
    if not st.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise IsADirectoryError(21, "is a directory or not a regular file", path)
    os.set_blocking(fd, True)
    return fd


def open_path(sbx: SandboxRuntime, path: str, user: User) -> int:
    """An O_PATH fd of `path` (symlinks inside the sandbox followed)."""
    with as_user(user):
        return open_in(_root(sbx), path, os.O_PATH)


def lstat(sbx: SandboxRuntime, path: str, user: User) -> os.stat_result:
    with as_user(user), Parent(sbx, path) as parent:
        return os.stat(parent.name, dir_fd=parent.fd, follow_symlinks=False)


def readlink(sbx: SandboxRuntime, path: str, user: User) -> str:
    with as_user(user), Parent(sbx, path) as parent:
        return os.readlink(parent.name, dir_fd=parent.fd)


def open_dir(sbx: SandboxRuntime, path: str, user: User) -> int:
    """A directory fd of `path`, opened with the user's permissions."""
    with as_user(user):
        return open_in(_root(sbx), path, os.O_RDONLY | os.O_DIRECTORY)


def listdir(sbx: SandboxRuntime, path: str, user: User) -> list[str]:
    fd = open_dir(sbx, path, user)
    try:
        return sorted(os.listdir(fd))
    finally:
        os.close(fd)


def remove(sbx: SandboxRuntime, path: str, user: User) -> None:
    with as_user(user), Parent(sbx, path) as parent:
        s = os.stat(parent.name, dir_fd=parent.fd, follow_symlinks=False)
        if st.S_ISDIR(s.st_mode):
            shutil.rmtree(parent.name, dir_fd=parent.fd)
        else:
            os.unlink(parent.name, dir_fd=parent.fd)


def move(sbx: SandboxRuntime, src: str, dst: str, user: User) -> None:
    with as_user(user), Parent(sbx, src) as sp, Parent(sbx, dst) as dp:
        os.rename(sp.name, dp.name, src_dir_fd=sp.fd, dst_dir_fd=dp.fd)
