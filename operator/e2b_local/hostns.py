"""The e2b-local server's own mount namespace.

The server enters a private mount namespace before it starts any thread: its layer
filesystem, idmapped mounts and sandbox roots are invisible to the host and to other
e2b-local servers, and vanish with the server even when it is killed. Inside it, the
cgroup v2 hierarchy that a hybrid host mounts at /sys/fs/cgroup/unified is detached,
because crun refuses hybrid hierarchies; sandboxes use the v1 controllers.
"""

from __future__ import annotations

import ctypes
import os

_CLONE_NEWNS = 0x0002_0000
_MS_REC, _MS_SLAVE = 0x4000, 0x8_0000
_MNT_DETACH = 2
UNIFIED = "/sys/fs/cgroup/unified"
_libc = ctypes.CDLL(None, use_errno=True)


def _mounted(path: str) -> bool:
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == path for line in f)


def enter_private_mount_namespace() -> None:
    """Unshare the mount namespace (host mounts still propagate in, ours never out)."""
    if _libc.unshare(_CLONE_NEWNS) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWNS): {os.strerror(err)}")
    if _libc.mount(b"none", b"/", None, _MS_REC | _MS_SLAVE, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"make / rslave: {os.strerror(err)}")
    if _mounted(UNIFIED) and _libc.umount2(UNIFIED.encode(), _MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"detach {UNIFIED}: {os.strerror(err)}")
