"""Finding the control-plane binaries: assets, a corrupt cache, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from e2b_operator.controlplane import binaries


def fake_cache(d: Path, truncate: str | None = None) -> None:
    d.mkdir(parents=True)
    sizes = {}
    for name in binaries.NAMES:
        (d / name).write_text("#!/bin/sh\necho fake\n")
        (d / name).chmod(0o755)
        sizes[name] = (d / name).stat().st_size
    (d / binaries.MARKER).write_text(json.dumps(sizes))
    if truncate:
        (d / truncate).write_text("#!")


def test_intact_cache_is_used(tmp_path: Path) -> None:
    fake_cache(tmp_path / "c")
    found = binaries._from_cache(tmp_path / "c", log=lambda _m: None)
    assert found is not None and found.kubectl == tmp_path / "c" / "kubectl"


def test_truncated_binary_makes_the_cache_corrupt_and_removed(tmp_path: Path) -> None:
    fake_cache(tmp_path / "c", truncate="kube-apiserver")
    said: list[str] = []
    assert binaries._from_cache(tmp_path / "c", log=said.append) is None
    assert not (tmp_path / "c").exists()
    assert "corrupt" in said[0] and "rebuilding" in said[0]


def test_partial_build_without_marker_is_not_a_cache(tmp_path: Path) -> None:
    fake_cache(tmp_path / "c")
    (tmp_path / "c" / binaries.MARKER).unlink()
    assert binaries._from_cache(tmp_path / "c", log=lambda _m: None) is None


def test_incomplete_kubebuilder_assets_is_one_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path))
    with pytest.raises(binaries.BinariesError, match="lacks kube-apiserver or etcd"):
        binaries.resolve(build=False)


def test_cache_lives_outside_the_repository_keyed_by_version(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("E2B_OPERATOR_CACHE", str(tmp_path))
    assert binaries.cache_dir() == tmp_path / "kube" / (
        f"{binaries.K8S_VERSION}-etcd-{binaries.ETCD_VERSION}"
    )
