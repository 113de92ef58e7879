"""A real, loopback-only Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager.

The state of a running cluster (PIDs, ports, token) is kept in ``<workdir>/cluster.json``
so another process (``make cluster-down``) can stop it by PID, and a crashed run's
leftovers are found and cleaned up on the next start.
"""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from . import certs, processes
from .binaries import KubeBinaries

READY_TIMEOUT = 120.0
CONTROLLERS = "namespace,garbagecollector,serviceaccount,serviceaccount-token"


@dataclass
class ClusterState:
    """What ``cluster.json`` records about a running cluster."""

    server: str
    token: str
    kubeconfig: str
    pids: dict[str, int] = field(default_factory=dict)


class LocalCluster:
    """Start and stop one local control plane rooted at ``workdir``."""

    def __init__(self, workdir: Path, binaries: KubeBinaries, *, port: int = 0, log=print) -> None:
        self.workdir = workdir.resolve()
        self.binaries = binaries
        self.port = port
        self.log = log
        self.state: ClusterState | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def state_file(self) -> Path:
        return self.workdir / "cluster.json"

    @property
    def logs(self) -> Path:
        return self.workdir / "logs"

    # -- lifecycle -------------------------------------------------------------------------

    def running(self) -> ClusterState | None:
        """The recorded cluster if all of its processes still run and the apiserver answers."""
        state = self._load()
        if state and all(processes.alive(pid, name) for name, pid in state.pids.items()):
            self.state = state
            if self._ready():
                return state
        return None

    def start(self) -> ClusterState:
        """Start etcd, kube-apiserver and kube-controller-manager; return when ready."""
        if self._load():
            self.log(f"found leftovers of an earlier run in {self.workdir}; cleaning them up")
            self.stop()
        api_port = self.port or processes.free_port()
        if self.port:
            processes.ensure_port_free(self.port)
        etcd_port, peer_port = processes.free_port(), processes.free_port()
        for stale in ("etcd", "pki", "logs"):
            shutil.rmtree(self.workdir / stale, ignore_errors=True)
        self.workdir.mkdir(parents=True, exist_ok=True)
        creds = certs.generate(self.workdir / "pki")
        server = f"https://127.0.0.1:{api_port}"
        self.state = ClusterState(server=server, token=creds.token, kubeconfig=str(self.kubeconfig))
        self._write_kubeconfig(creds)
        try:
            self._start_etcd(etcd_port, peer_port)
            self._start_apiserver(api_port, etcd_port, creds)
            self._start_controller_manager(creds)
            self._wait_for_default_namespace()
        except BaseException:
            self.stop()
            raise
        self._link_kubectl()
        return self.state

    def stop(self) -> None:
        """Stop every process this cluster started, newest first, by PID."""
        state = self.state or self._load()
        if state:
            for name, pid in reversed(list(state.pids.items())):
                processes.stop(pid, name)
        self.state_file.unlink(missing_ok=True)
        shutil.rmtree(self.workdir / "etcd", ignore_errors=True)
        self.state = None

    # -- using it --------------------------------------------------------------------------

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run the version-matched kubectl against this cluster."""
        cmd = [str(self.binaries.kubectl), f"--kubeconfig={self.kubeconfig}", *args]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            error = subprocess.CalledProcessError(proc.returncode, cmd, proc.stdout, proc.stderr)
            error.add_note(f"kubectl said: {proc.stderr.strip()}")
            raise error
        return proc

    def install_crds(self, crds: Path) -> None:
        """Apply the CRD file ``crds``, or every CRD in that directory, and wait until each
        is Established. Not ``kubectl wait --for=condition``: it fails at once on a CRD whose
        status has no conditions yet, which a CRD just created may not have."""
        files = sorted(crds.glob("*.yaml")) if crds.is_dir() else [crds]
        if not files:
            return
        args = [x for f in files for x in ("-f", str(f))]
        self.kubectl("apply", "--server-side", "--force-conflicts", *args)
        state = self.state or self._load()
        assert state is not None, "the cluster is not running"
        processes.wait_until(
            lambda: self._established(args),
            pid=state.pids["kube-apiserver"],
            name="CRDs Established",
            log_path=self.logs / "kube-apiserver.log",
            timeout=60,
        )

    def _established(self, args: list[str]) -> bool:
        out = self.kubectl("get", "-o", "json", *args).stdout
        got = json.loads(out)
        crds = got["items"] if got.get("kind") == "List" else [got]
        return all(
            any(
                c.get("type") == "Established" and c.get("status") == "True"
                for c in (crd.get("status") or {}).get("conditions") or []
            )
            for crd in crds
        )

    # -- internals -------------------------------------------------------------------------

    def _start_etcd(self, port: int, peer_port: int) -> None:
        url = f"http://127.0.0.1:{port}"
        self._spawn(
            "etcd",
            [
                str(self.binaries.etcd),
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={url}",
                f"--advertise-client-urls={url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
                "--listen-metrics-urls=",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
            lambda: _http_ok(f"{url}/health"),
        )

    def _start_apiserver(self, port: int, etcd_port: int, creds: certs.Credentials) -> None:
        assert self.state is not None
        self._spawn(
            "kube-apiserver",
            [
                str(self.binaries.kube_apiserver),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                f"--secure-port={port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--cert-dir={self.workdir / 'pki'}",
                f"--tls-cert-file={creds.serving_cert}",
                f"--tls-private-key-file={creds.serving_key}",
                f"--token-auth-file={creds.token_file}",
                "--authorization-mode=RBAC",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--allow-privileged=true",
                "--disable-admission-plugins=ServiceAccount",
                f"--service-account-issuer=https://127.0.0.1:{port}/",
                f"--service-account-key-file={creds.sa_key}",
                f"--service-account-signing-key-file={creds.sa_key}",
            ],
            lambda: self._ready(),
        )

    def _start_controller_manager(self, creds: certs.Credentials) -> None:
        kcm = self.binaries.kube_controller_manager
        if kcm is None:
            self.log("no kube-controller-manager: namespaces will not finish deleting, no GC")
            return
        self._spawn(
            "kube-controller-manager",
            [
                str(kcm),
                f"--kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                f"--controllers={CONTROLLERS}",
                f"--service-account-private-key-file={creds.sa_key}",
                f"--root-ca-file={creds.ca_cert}",
                "--use-service-account-credentials=false",
                "--bind-address=127.0.0.1",
                "--secure-port=0",
            ],
            None,
        )

    def _spawn(self, name: str, cmd: list[str], ready) -> None:
        assert self.state is not None
        log = self.logs / f"{name}.log"
        pid = processes.spawn(cmd, log)
        self.state.pids[name] = pid
        self._save()
        if ready is not None:
            processes.wait_until(ready, pid=pid, name=name, log_path=log, timeout=READY_TIMEOUT)

    def _wait_for_default_namespace(self) -> None:
        assert self.state is not None
        pid = self.state.pids["kube-apiserver"]
        processes.wait_until(
            lambda: self._get("/api/v1/namespaces/default") == 200,
            pid=pid,
            name="kube-apiserver (default namespace)",
            log_path=self.logs / "kube-apiserver.log",
            timeout=READY_TIMEOUT,
        )

    def _ready(self) -> bool:
        return self._get("/readyz") == 200

    def _get(self, path: str) -> int:
        assert self.state is not None
        ctx = ssl.create_default_context(cafile=str(self.workdir / "pki" / "ca.crt"))
        req = urllib.request.Request(
            self.state.server + path, headers={"Authorization": f"Bearer {self.state.token}"}
        )
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=5) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except (OSError, ssl.SSLError):
            return 0

    def _write_kubeconfig(self, creds: certs.Credentials) -> None:
        assert self.state is not None
        ca = base64.b64encode(creds.ca_cert.read_bytes()).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "e2b-local",
                    "cluster": {"server": self.state.server, "certificate-authority-data": ca},
                }
            ],
            "users": [{"name": "admin", "user": {"token": creds.token}}],
            "contexts": [
                {"name": "e2b-local", "context": {"cluster": "e2b-local", "user": "admin"}}
            ],
            "current-context": "e2b-local",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config, sort_keys=False))
        self.kubeconfig.chmod(0o600)

    def _link_kubectl(self) -> None:
        """Put the version-matched kubectl at ``<workdir>/bin/kubectl`` for shells to use."""
        link = self.workdir / "bin" / "kubectl"
        link.parent.mkdir(exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(self.binaries.kubectl)

    def _save(self) -> None:
        assert self.state is not None
        self.state_file.write_text(json.dumps(asdict(self.state), indent=1))
        self.state_file.chmod(0o600)

    def _load(self) -> ClusterState | None:
        try:
            return ClusterState(**json.loads(self.state_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False
