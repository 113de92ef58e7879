"""Find, cache or build the Kubernetes binaries the local control plane runs.

Order: ``KUBEBUILDER_ASSETS``; binaries on ``PATH``; a cache outside the repository
keyed by version; a build from the Go module proxy into that cache; for machines
with internet but no Go, the official release downloads.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

K8S_VERSION = "v1.35.4"
ETCD_VERSION = "v3.6.16"
BUILD_SCRIPT = Path(__file__).with_name("build_binaries.sh")
NAMES = ("kube-apiserver", "kube-controller-manager", "kubectl", "etcd")
MARKER = "complete.json"


class BinariesError(RuntimeError):
    """The binaries cannot be found, built or downloaded; the message says what to do."""


@dataclass(frozen=True)
class KubeBinaries:
    """Paths of the control-plane executables."""

    kube_apiserver: Path
    etcd: Path
    kube_controller_manager: Path | None
    kubectl: Path
    source: str

    @property
    def bin_dir(self) -> Path:
        return self.kubectl.parent


def cache_root() -> Path:
    """The cache directory, outside any checkout: ``$E2B_OPERATOR_CACHE`` or ``~/.cache``."""
    env = os.environ.get("E2B_OPERATOR_CACHE")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base if env else base / "e2b-operator"


def cache_dir() -> Path:
    return cache_root() / "kube" / f"{K8S_VERSION}-etcd-{ETCD_VERSION}"


def resolve(*, build: bool = True, log=print) -> KubeBinaries:
    """Return usable binaries, building or downloading them into the cache if needed."""
    found = _from_assets() or _from_path()
    if found:
        return found
    with locked(cache_dir()):
        cached = _from_cache(cache_dir(), log)
        if cached:
            return cached
        if not build:
            raise BinariesError(f"no Kubernetes binaries in {cache_dir()}; run `make cluster`")
        _populate(cache_dir(), log)
        cached = _from_cache(cache_dir(), log)
        if not cached:
            raise BinariesError(f"the build finished but {cache_dir()} is incomplete")
        return cached


def _from_assets() -> KubeBinaries | None:
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if not assets:
        return None
    d = Path(assets)
    api, etcd = d / "kube-apiserver", d / "etcd"
    if not (_executable(api) and _executable(etcd)):
        raise BinariesError(
            f"KUBEBUILDER_ASSETS={assets} lacks kube-apiserver or etcd; fix or unset it"
        )
    kcm = d / "kube-controller-manager"
    kubectl = d / "kubectl" if _executable(d / "kubectl") else _which("kubectl")
    if kubectl is None:
        raise BinariesError(f"no kubectl in KUBEBUILDER_ASSETS={assets} or on PATH")
    return KubeBinaries(
        api, etcd, kcm if _executable(kcm) else None, kubectl, f"KUBEBUILDER_ASSETS={d}"
    )


def _from_path() -> KubeBinaries | None:
    api, etcd, kubectl = _which("kube-apiserver"), _which("etcd"), _which("kubectl")
    if not (api and etcd and kubectl):
        return None
    return KubeBinaries(api, etcd, _which("kube-controller-manager"), kubectl, "PATH")


def _from_cache(d: Path, log) -> KubeBinaries | None:
    marker = d / MARKER
    if not marker.exists():
        return None
    try:
        sizes = json.loads(marker.read_text())
        intact = all((d / n).stat().st_size == sizes[n] and _executable(d / n) for n in NAMES)
    except (OSError, ValueError, KeyError):
        intact = False
    if not intact:
        log(f"cache {d} is corrupt (a binary is missing or truncated); rebuilding it")
        shutil.rmtree(d, ignore_errors=True)
        return None
    return KubeBinaries(
        d / "kube-apiserver", d / "etcd", d / "kube-controller-manager", d / "kubectl", f"cache {d}"
    )


def _populate(d: Path, log) -> None:
    """Build (or download) into a scratch directory, then move it into place atomically."""
    d.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".partial-", dir=d.parent))
    try:
        if shutil.which("go"):
            log(f"building Kubernetes {K8S_VERSION} and etcd {ETCD_VERSION} from the Go proxy")
            log(f"into {d} (once per version; 10-20 minutes on 2 cores)")
            proc = subprocess.run(
                ["bash", str(BUILD_SCRIPT), str(scratch), K8S_VERSION, ETCD_VERSION]
            )
            if proc.returncode != 0:
                raise BinariesError(
                    "building the Kubernetes binaries from the Go module proxy failed (see above); "
                    "check that `go env GOPROXY` is reachable, or set KUBEBUILDER_ASSETS to a "
                    "directory holding kube-apiserver, etcd, kube-controller-manager and kubectl"
                )
        else:
            log("Go is not installed; downloading the official release binaries")
            _download(scratch)
        (scratch / MARKER).write_text(
            json.dumps({n: (scratch / n).stat().st_size for n in NAMES}, indent=1)
        )
        shutil.rmtree(d, ignore_errors=True)
        scratch.rename(d)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _download(dest: Path) -> None:
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    k8s = f"https://dl.k8s.io/release/{K8S_VERSION}/bin/linux/{arch}"
    etcd = (
        f"https://github.com/etcd-io/etcd/releases/download/{ETCD_VERSION}/"
        f"etcd-{ETCD_VERSION}-linux-{arch}.tar.gz"
    )
    try:
        for name in ("kube-apiserver", "kube-controller-manager", "kubectl"):
            _fetch(f"{k8s}/{name}", dest / name)
        tgz = dest / "etcd.tar.gz"
        _fetch(etcd, tgz)
        with tarfile.open(tgz) as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith("/etcd"))
            member.name = "etcd"
            tar.extract(member, dest, filter="data")
        tgz.unlink()
    except OSError as exc:
        raise BinariesError(
            f"neither Go nor the release downloads are available ({exc}); install Go "
            "(https://go.dev/dl) or set KUBEBUILDER_ASSETS to a directory with the binaries"
        ) from exc
    for name in NAMES:
        (dest / name).chmod(0o755)


def _fetch(url: str, dest: Path) -> None:
    with urllib.request.urlopen(url, timeout=60) as resp, dest.open("wb") as out:
        shutil.copyfileobj(resp, out)


@contextmanager
def locked(d: Path) -> Iterator[None]:
    """Serialise builds of one version (the directory d) across processes."""
    d.parent.mkdir(parents=True, exist_ok=True)
    with (d.parent / f".{d.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _which(name: str) -> Path | None:
    found = shutil.which(name)
    return Path(found) if found else None


def _executable(p: Path) -> bool:
    return p.is_file() and os.access(p, os.X_OK)
