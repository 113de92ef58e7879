"""Compare the OCI runtimes e2b-local could use on this machine: crun, runc and gVisor (runsc).

Run as root: `.venv/bin/python bench/bench_runtimes.py` (or `make bench-runtimes`).

Like e2b-local's own start-up, the benchmark enters a private mount namespace and sets up a
`Host` on a temporary state dir (idmapped host root, mask layer, its own cgroup parent), then
for each runtime installed mounts a sandbox root exactly as e2b-local does (an overlay of
the mask over the idmapped host root) and writes e2b-local's config.json (user namespace,
Docker's capabilities and seccomp profile, masked paths, cgroup limits). It measures:
  create   `<rt> run --bundle B id` of /bin/true, from the call to the container's exit
  exec     `<rt> exec id /bin/true` in a running container
and checks what works inside (python ssl, pip, npm, apt-get, uid 1000 through setpriv and su,
root writing /usr; sudo is optional). Runtimes take turns run by run, so load from other
work on the machine falls on all of them alike. Everything made (containers, mounts,
cgroups, dirs) is removed at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2b_local import hostns, oci
from e2b_local.isolation import CGROUP_ROOT, Host
from e2b_local.sandbox import SandboxRuntime, umount

N = 20
TIMEOUT = 60.0
PROBE_TIMEOUT = 20.0
MEMORY_MB, CPU_COUNT = 512, 1
WRITTEN = "usr/local/bench-w"
MISSING = "not installed (Debian: apt-get install -y {})"
ABSOLUTE_NOTE = "config copy: linux.cgroupsPath made absolute (see absolute_cgroups)"
# (label, command run with `<rt> exec`, what counts as working)
CHECKS: list[tuple[str, list[str], Callable[[str], bool]]] = [
    ("ssl", ["python3", "-c", "import ssl; print(ssl.OPENSSL_VERSION)"], lambda o: "SSL" in o),
    ("pip", ["python3", "-m", "pip", "--version"], lambda o: o.startswith("pip ")),
    ("npm", ["npm", "--version"], lambda o: o[:1].isdigit()),
    ("apt", ["apt-get", "--version"], lambda o: o.startswith("apt ")),
    (
        "setpriv-1000",
        ["setpriv", "--reuid=1000", "--regid=1000", "--init-groups", "id"],
        lambda o: o.startswith("uid=1000(user)"),
    ),
    ("su-1000", ["su", "user", "-c", "id"], lambda o: o.startswith("uid=1000(user)")),
    (
        "root-writes-/usr",
        ["sh", "-c", f"echo x > /{WRITTEN} && cat /{WRITTEN}"],
        lambda o: o == "x",
    ),
]
OPTIONAL = [("sudo", ["test", "-x", "/usr/bin/sudo"])]


def _same(c: dict[str, Any]) -> dict[str, Any]:
    return c


@dataclass
class Lane:
    """One runtime (with its flags and config adaptation), its sandbox root and its results."""

    name: str
    version: str
    argv: list[str]
    adapt: Callable[[dict[str, Any]], dict[str, Any]] = _same
    config_kw: dict[str, Any] = field(default_factory=dict)
    measure_exec: bool = True
    sbx: SandboxRuntime | None = None
    exec_id: str | None = None
    create: list[float] = field(default_factory=list)
    exec: list[float] = field(default_factory=list)
    works: list[str] = field(default_factory=list)
    fails: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failed: bool = False

    @property
    def slug(self) -> str:
        return self.name.replace("/", "-").replace("+", "-")


class Bench:
    def __init__(self, host: Host, state: Path) -> None:
        self.host = host
        self.state = state
        self.created: list[tuple[list[str], str]] = []  # (runtime argv, container id)
        self.sandboxes: list[SandboxRuntime] = []

    def sandbox(self, name: str) -> SandboxRuntime:
        """A fresh sandbox root, mounted as e2b-local mounts one (no template layers)."""
        sbx = SandboxRuntime(
            f"bench-{name}",
            self.host,
            [str(self.host.mask), str(self.host.hostroot)],
            internet=False,
            memory_mb=MEMORY_MB,
            cpu_count=CPU_COUNT,
        )
        self.sandboxes.append(sbx)
        sbx._mount_root()
        return sbx

    def bundle(self, lane: Lane, sbx: SandboxRuntime, cid: str, args: list[str]) -> Path:
        """Write e2b-local's config.json (adapted for the lane) for container `cid`."""
        spec = oci.SandboxSpec(
            rootfs=str(sbx.dir / "root"),
            hostname="e2b-" + sbx.id[:12],
            args=args,
            cgroups_path=self.host.cgroups_path(cid),
            memory_mb=MEMORY_MB,
            cpu_count=CPU_COUNT,
        )
        b = sbx.dir / f"bundle-{cid}"
        b.mkdir(exist_ok=True)
        config = lane.adapt(oci.config(spec, **lane.config_kw))
        (b / "config.json").write_text(json.dumps(config))
        return b

    def rt(
        self, argv: list[str], *args: str, log: Path | None = None, timeout: float = TIMEOUT
    ) -> tuple[int, str, float]:
        """Run a runtime command; (exit code, output, seconds). Output goes to `log` if given."""
        full = [*argv, *args]
        t0 = time.perf_counter()
        try:
            if log is None:
                r = subprocess.run(
                    full,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                    check=False,
                )
                return r.returncode, (r.stdout + r.stderr).strip(), time.perf_counter() - t0
            with open(log, "w") as f:
                r = subprocess.run(
                    full, stdin=subprocess.DEVNULL, stdout=f, stderr=f, timeout=timeout
                )
            return r.returncode, log.read_text(errors="replace").strip(), time.perf_counter() - t0
        except subprocess.TimeoutExpired:
            return -1, f"timed out after {timeout:.0f} s", timeout

    def run_true(self, lane: Lane, cid: str, timeout: float = TIMEOUT) -> tuple[int, str, float]:
        """`<rt> run` of /bin/true, timed from the call to its exit."""
        assert lane.sbx is not None
        self.created.append((lane.argv, cid))
        b = self.bundle(lane, lane.sbx, cid, ["/bin/true"])
        code, out, dt = self.rt(lane.argv, "run", "--bundle", str(b), cid, timeout=timeout)
        if code != 0:
            self.rt(lane.argv, "delete", "--force", cid)
        shutil.rmtree(b, ignore_errors=True)
        return code, " ".join(out.split()), dt

    def probe(self, lane: Lane, log_dir: Path | None = None) -> str | None:
        """Run /bin/true once; None if it worked, else the error (and runsc's last log line)."""
        code, out, _ = self.run_true(lane, f"bench-{lane.slug}-probe", PROBE_TIMEOUT)
        if code == 0:
            return None
        err = f"exit {code}: {out or '(no output)'}"
        for f in sorted(log_dir.glob("*boot*")) if log_dir else []:
            lines = f.read_text(errors="replace").strip().splitlines()
            if lines:
                err += f"; last line of its boot log: {' '.join(lines[-1].split())}"
        return err

    def start(self, lane: Lane) -> None:
        """Start the lane's long-running container (for exec and the checks)."""
        assert lane.sbx is not None
        cid = f"bench-{lane.slug}-exec"
        self.created.append((lane.argv, cid))
        b = self.bundle(lane, lane.sbx, cid, ["/bin/sleep", "infinity"])
        log = lane.sbx.dir / "exec.log"
        code, out, _ = self.rt(lane.argv, "run", "--detach", "--bundle", str(b), cid, log=log)
        if code != 0:
            lane.notes.append(f"run --detach FAILED: exit {code}: {' '.join(out.split())}")
            return
        lane.exec_id = cid

    def checks(self, lane: Lane) -> None:
        assert lane.sbx is not None and lane.exec_id is not None
        code, out, _ = self.rt(lane.argv, "exec", lane.exec_id, "cat", "/proc/self/uid_map")
        lane.notes.append(f"uid_map inside: {' '.join(out.split())}" if code == 0 else out)
        for label, argv, ok in CHECKS:
            code, out, _ = self.rt(lane.argv, "exec", lane.exec_id, *argv)
            good = code == 0 and ok(out)
            (lane.works if good else lane.fails).append(label)
            if not good:
                lane.notes.append(f"{label}: exit {code}: {' '.join(out.split())[-300:]}")
        for label, argv in OPTIONAL:
            code, _, _ = self.rt(lane.argv, "exec", lane.exec_id, *argv)
            lane.notes.append(f"{label} {'present' if code == 0 else 'absent (optional)'}")
        lane.notes.append(f"on the host: {self.host_view(lane.sbx, lane.exec_id)}")

    def host_view(self, sbx: SandboxRuntime, cid: str) -> str:
        """Host uids of the container's processes, and the owner of a file its root wrote."""
        uids: set[str] = set()
        with contextlib.suppress(OSError):
            for pid in (self.host.cgroup("pids", cid) / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    status = Path(f"/proc/{pid}/status").read_text().splitlines()
                    uids.update(ln.split()[1] for ln in status if ln.startswith("Uid:"))
        written = sbx.upper / WRITTEN
        owner = str(written.stat().st_uid) if written.exists() else "? (not in the upper layer)"
        procs = ",".join(sorted(uids)) if uids else "? (none in its pids cgroup)"
        return f"its processes run as uid {procs}; the file root wrote is owned by uid {owner}"

    def delete_all(self) -> None:
        for argv, cid in self.created:
            with contextlib.suppress(Exception):
                subprocess.run(
                    [*argv, "delete", "--force", cid],
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    timeout=TIMEOUT,
                    check=False,
                )
        self.created.clear()

    def cleanup(self) -> None:
        self.delete_all()
        self.host.kill_stale()
        for sbx in self.sandboxes:
            umount(str(sbx.dir / "root"))
            shutil.rmtree(sbx.dir, ignore_errors=True)
        # Empty groups a runtime left under this process's own (nested) cgroups.
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, ctls, path = line.split(":", 2)
            for ctl in ctls.split(",") if ctls and path != "/" else []:
                parent = CGROUP_ROOT / ctl / path.lstrip("/") / self.host.cgroup_parent
                dirs = [Path(d) for d, _, _ in os.walk(parent, topdown=False)]
                for d in dirs:
                    with contextlib.suppress(OSError):
                        d.rmdir()

    def measure(self, lanes: list[Lane]) -> None:
        """Start every lane's container, then time exec and create, one lane after the other
        within each of N rounds."""
        lanes = [ln for ln in lanes if not ln.failed]
        for lane in lanes:
            lane.sbx = self.sandbox(lane.slug)
            if lane.measure_exec:
                self.start(lane)
        crun = next((ln for ln in lanes if ln.name == "crun" and ln.exec_id), None)
        for lane in lanes:
            if lane.name == "crun+bpf":
                bpf = self.compiled_bpf(crun)
                if bpf is None:
                    lane.failed = True
                    lane.notes.append("FAILED: crun left no seccomp.bpf in its state dir")
                else:
                    lane.config_kw["seccomp_bpf"] = bpf
        broken: set[str] = set()
        for i in range(N):
            for lane in lanes:
                if lane.exec_id is None or lane.name in broken:
                    continue
                code, out, dt = self.rt(lane.argv, "exec", lane.exec_id, "/bin/true")
                if code == 0:
                    lane.exec.append(dt)
                else:
                    broken.add(lane.name)
                    lane.notes.append(f"exec {i} FAILED: exit {code}: {' '.join(out.split())}")
        for lane in lanes:
            if lane.exec_id is not None:
                self.checks(lane)
        self.delete_all()  # no idle containers during the create rounds
        for i in range(N):
            for lane in lanes:
                if lane.failed:
                    continue
                code, out, dt = self.run_true(lane, f"bench-{lane.slug}-run{i}")
                if code == 0:
                    lane.create.append(dt)
                else:
                    lane.failed = True
                    lane.notes.append(f"create {i} FAILED: exit {code}: {out}")

    def compiled_bpf(self, crun: Lane | None) -> str | None:
        """The filter crun compiled for its exec container: what e2b-local reuses."""
        if crun is None:
            return None
        root = Path(crun.argv[crun.argv.index("--root") + 1])
        f = root / str(crun.exec_id) / "seccomp.bpf"
        return base64.b64encode(f.read_bytes()).decode() if f.is_file() else None


def version_of(binary: str) -> str:
    r = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    first = (r.stdout or r.stderr).splitlines()[:1]
    return first[0].split("version")[-1].strip() if first else "?"


def absolute_cgroups(c: dict[str, Any]) -> dict[str, Any]:
    """runc and runsc put a relative cgroupsPath under the caller's own v1 cgroups (this
    process may sit in a nested memory cgroup); absolute, it lands where crun puts it."""
    c = copy.deepcopy(c)
    c["linux"]["cgroupsPath"] = "/" + c["linux"]["cgroupsPath"]
    return c


def runsc_lanes(bench: Bench, state: Path) -> list[Lane]:
    """Try each gVisor platform (adding --ignore-cgroups only after a cgroup error)."""
    version = version_of("runsc")
    base = ["runsc", "--root", str(state / "runsc"), "--rootless=false", "--network=none"]
    probe_sbx = bench.sandbox("runsc-probe")
    lanes: list[Lane] = []
    for platform in ("systrap", "ptrace", "kvm"):
        tried: list[str] = []
        err: str | None = None
        for extra in ([], ["--ignore-cgroups"]):
            # --oci-seccomp: also apply the config's seccomp filter inside the sandbox
            flags = [f"--platform={platform}", *extra, "--oci-seccomp"]
            log_dir = state / "runsc-log" / f"{platform}-{len(tried)}"
            debug = [*base, *flags, "--debug", f"--debug-log={log_dir}/"]
            probe = Lane(f"runsc/{platform}", version, debug, absolute_cgroups, sbx=probe_sbx)
            err = bench.probe(probe, log_dir)
            if err is None:
                lane = Lane(f"runsc/{platform}", version, [*base, *flags], absolute_cgroups)
                lane.notes.append("flags: " + " ".join(base[3:] + flags))
                lane.notes.append(ABSOLUTE_NOTE)
                lane.notes += [f"first tried {t}" for t in tried]
                lanes.append(lane)
                break
            tried.append(f"{' '.join(flags)} -> {err[:500]}")
            if "cgroup" not in err.lower():
                break
        if err is not None:
            lanes.append(
                Lane(
                    f"runsc/{platform}",
                    version,
                    [],
                    failed=True,
                    notes=[f"FAILED {t}" for t in tried],
                )
            )
    bench.delete_all()
    return lanes


def pct(xs: list[float]) -> str:
    if not xs:
        return "-"
    xs = sorted(xs)
    p95 = xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]
    return f"{statistics.median(xs) * 1000:.1f} / {p95 * 1000:.1f}"


def print_table(lanes: list[Lane], load: tuple[str, str]) -> None:
    print(f"\nN={N} per measurement; load average before {load[0]}, after {load[1]}")
    head = ("runtime", "version", "create p50/p95 ms", "exec p50/p95 ms", "works", "fails")
    rows = [
        (
            ln.name,
            ln.version,
            pct(ln.create),
            pct(ln.exec),
            " ".join(ln.works) or "-",
            " ".join(ln.fails) or "-",
        )
        for ln in lanes
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=True)]
    for row in (head, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)).rstrip())
    print("\nnotes:")
    for ln in lanes:
        for n in ln.notes:
            print(f"  {ln.name}: {n}")


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    if os.geteuid() != 0:
        raise SystemExit("run as root: mounts, user namespaces and cgroups")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    hostns.enter_private_mount_namespace()
    state = Path(tempfile.mkdtemp(prefix="bench-runtimes-"))
    host = Host(state)
    bench = Bench(host, state)
    lanes: list[Lane] = []
    load_before = loadavg()
    try:
        host.startup()
        print(f"host ready (run dir {host.run_dir}); probing and measuring...", flush=True)
        if shutil.which("crun"):
            v = version_of("crun")
            lanes.append(Lane("crun", v, ["crun", *host.crun_args]))
            lanes.append(
                Lane(
                    "crun+bpf",
                    v,
                    ["crun", *host.crun_args],
                    measure_exec=False,
                    notes=["seccomp as e2b-local runs it: the filter crun compiled is reused"],
                )
            )
        if shutil.which("runc"):
            lane = Lane("runc", version_of("runc"), ["runc", "--root", str(state / "runc")])
            lane.adapt = absolute_cgroups
            lane.notes.append(ABSOLUTE_NOTE)
            lanes.append(lane)
        else:
            lanes.append(Lane("runc", "-", [], failed=True, notes=[MISSING.format("runc")]))
        if shutil.which("runsc"):
            lanes += runsc_lanes(bench, state)
        else:
            lanes.append(Lane("runsc", "-", [], failed=True, notes=[MISSING.format("runsc")]))
        bench.measure(lanes)
    finally:
        bench.cleanup()
        host.shutdown()
        shutil.rmtree(state, ignore_errors=True)
    print_table(lanes, (load_before, loadavg()))


if __name__ == "__main__":
    main()
