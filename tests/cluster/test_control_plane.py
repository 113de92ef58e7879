"""The local control plane is the real thing: namespaces, GC, conflicts, restarts."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from e2b_operator.controlplane import processes
from e2b_operator.controlplane.cluster import LocalCluster


def test_namespace_deletion_finishes(kube: LocalCluster) -> None:
    kube.kubectl("create", "namespace", "goes-away")
    kube.kubectl("delete", "namespace", "goes-away", "--timeout=60s")
    gone = kube.kubectl("get", "namespace", "goes-away", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_owner_references_are_garbage_collected(kube: LocalCluster, namespace: str) -> None:
    kube.kubectl("-n", namespace, "create", "configmap", "owner")
    uid = kube.kubectl("-n", namespace, "get", "cm", "owner", "-o", "jsonpath={.metadata.uid}")
    child = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "child",
            "namespace": namespace,
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid.stdout}
            ],
        },
    }
    kube.kubectl("apply", "-f", "-", input=json.dumps(child))
    kube.kubectl("-n", namespace, "delete", "cm", "owner")
    deadline = time.monotonic() + 60
    while kube.kubectl("-n", namespace, "get", "cm", "child", check=False).returncode == 0:
        assert time.monotonic() < deadline, "child ConfigMap was not garbage-collected"
        time.sleep(0.5)


def test_stale_resource_version_conflicts(kube: LocalCluster, namespace: str) -> None:
    kube.kubectl("-n", namespace, "create", "configmap", "cm", "--from-literal=a=1")
    body = json.loads(kube.kubectl("-n", namespace, "get", "cm", "cm", "-o", "json").stdout)
    kube.kubectl("-n", namespace, "patch", "cm", "cm", "-p", '{"data":{"a":"2"}}')
    body["data"]["a"] = "3"
    stale = kube.kubectl("replace", "-f", "-", input=json.dumps(body), check=False)
    assert stale.returncode != 0 and "the object has been modified" in stale.stderr


def test_restart_over_crashed_run_recovers(tmp_path, kube: LocalCluster) -> None:
    """A second cluster in a dir whose processes were SIGKILLed cleans up and starts."""
    first = LocalCluster(tmp_path, kube.binaries)
    state = first.start()
    for pid in state.pids.values():
        processes.stop(pid, timeout=0)
    second = LocalCluster(tmp_path, kube.binaries, log=lambda _msg: None)
    try:
        pids = second.start().pids.copy()
        assert second.kubectl("get", "namespace", "default").returncode == 0
    finally:
        second.stop()
    assert not any(processes.alive(pid) for pid in [*state.pids.values(), *pids.values()])


def test_taken_port_is_one_clear_line(kube: LocalCluster, tmp_path) -> None:
    assert kube.state is not None
    port = int(kube.state.server.rsplit(":", 1)[1])
    cluster = LocalCluster(tmp_path, kube.binaries, port=port)
    with pytest.raises(processes.StartupError, match=f"port {port} on 127.0.0.1 is taken"):
        cluster.start()
    assert not (tmp_path / "cluster.json").exists()


def test_kubectl_is_version_matched(kube: LocalCluster) -> None:
    out = kube.kubectl("version", "-o", "json")
    version = json.loads(out.stdout)
    assert version["clientVersion"]["gitVersion"] == version["serverVersion"]["gitVersion"]
    assert subprocess.run([str(kube.binaries.kubectl), "version", "--client"]).returncode == 0
