"""Escape attempts from inside e2b-local sandboxes, through the unmodified e2b SDK (issue 8).

Every test plays the attacker: root (E2B lets every sandbox run commands as root) or the
default user, with internet on and off, runs a small python3 program in the sandbox
(escape_scripts.py) and then checks the HOST: no file appeared, no setting changed, no
listener was reached, no secret came back. Every attempt must fail; each test reports every
attempt that worked, not just the first.
"""

from __future__ import annotations

import base64
import contextlib
import glob
import json
import os
import platform
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2b import CommandExitException, Sandbox, Template
from e2b.exceptions import SandboxException

from nettarget import NetnsTarget, rand

from . import escape_scripts as sc
from .conftest import LocalServer, start_server, stop_server
from .escape_targets import (
    HostListeners,
    HostPaths,
    effective_memory_limit,
    host_addresses,
    host_cgroups,
    host_fetch,
    host_pid_by_argv0,
    host_uid,
    restore_stat,
    stat_sig,
    thaw,
)

USERS = ["root", "user"]
users = pytest.mark.parametrize("user", USERS)
internet = pytest.mark.parametrize("internet", [True, False], ids=["net-on", "net-off"])
needs_ip = pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2's `ip`")
MEM_MB = 128
METADATA = "169.254.169.254"
OUTSIDE = "203.0.113.10"  # TEST-NET-3, served by our own network namespace


def escapes(results: dict[str, str], *prefixes: str) -> dict[str, str]:
    """Attempts that worked (all of them, or those whose name starts with one of prefixes)."""
    done = sc.succeeded(results)
    if prefixes:
        done = {k: v for k, v in done.items() if k.startswith(prefixes)}
    return done


def alive(sbx: Sandbox, timeout: float = 10) -> str:
    """'' when the sandbox answers a command, else what went wrong."""
    try:
        out = sbx.commands.run("echo alive", timeout=timeout, request_timeout=timeout).stdout
    except Exception as e:
        return f"{sbx.sandbox_id}: {type(e).__name__}: {e}"
    return "" if out == "alive\n" else f"{sbx.sandbox_id}: answered {out!r}"


def state_files(state_dir: Path) -> Iterator[Path]:
    """Files of a server's state dir on the host, skipping mounts (layers, sandbox roots)."""
    for dirpath, dirnames, files in os.walk(state_dir):
        dirnames[:] = [
            d for d in dirnames if d != "run" and not os.path.ismount(os.path.join(dirpath, d))
        ]
        for f in files:
            yield Path(dirpath) / f


@pytest.fixture(scope="module")
def boxes(local: LocalServer) -> Iterator[dict[bool, Sandbox]]:
    """One default-template sandbox per internet setting, shared by the read-mostly attacks."""
    # They must outlive the module however slow a loaded host makes it (300 s by default).
    out = {
        net: Sandbox.create(allow_internet_access=net, timeout=3600, **local.kw)
        for net in (True, False)
    }
    yield out
    for s in out.values():
        with contextlib.suppress(Exception):
            s.kill()


# -- 1. the host's disk ----------------------------------------------------------------------


@users
@internet
def test_host_disk_mknod_and_mount(boxes: dict[bool, Sandbox], user: str, internet: bool) -> None:
    dev = os.stat("/").st_dev
    fstype = next(
        ln.split()[2]
        for ln in reversed(Path("/proc/mounts").read_text().splitlines())
        if ln.split()[1] == "/"
    )
    marker = "e2bt-disk-" + rand()
    host = HostPaths(Path("/") / marker)
    try:
        r = sc.attack(
            boxes[internet],
            sc.BLOCK_DEVICE,
            user,
            {"major": os.major(dev), "minor": os.minor(dev), "fstype": fstype, "marker": marker},
        )
        assert not host.present(), f"a sandbox created {host.present()} on the host: {r}"
        assert not escapes(r), f"device attempts that worked: {escapes(r)}"
    finally:
        host.remove()


# -- 2. cgroups ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mem_template(local: LocalServer) -> str:
    Template.build(Template().from_debian_image(), "e2bt-mem128", memory_mb=MEM_MB, **local.kw)
    return "e2bt-mem128"


@pytest.fixture(scope="module")
def victim(local: LocalServer) -> Iterator[tuple[Sandbox, str]]:
    """Another sandbox, and its freezer cgroup as the host sees it."""
    s = Sandbox.create(allow_internet_access=False, **local.kw)
    tag = "e2bt-victim-" + rand()
    s.commands.run(f"exec -a {tag} sleep 600", background=True)
    freezer = host_cgroups(host_pid_by_argv0(tag)).get("freezer", "")
    yield s, freezer
    thaw(freezer)
    with contextlib.suppress(Exception):
        s.kill()


@users
@internet
def test_cgroup_escapes(
    local: LocalServer,
    mem_template: str,
    victim: tuple[Sandbox, str],
    user: str,
    internet: bool,
) -> None:
    vsbx, vfreezer = victim
    m = rand()
    sbx = Sandbox.create(mem_template, allow_internet_access=internet, **local.kw)
    problems: list[str] = []
    try:
        sbx.commands.run(f"exec -a e2bt-base-{m} sleep 60", background=True, user=user)
        base = host_cgroups(host_pid_by_argv0(f"e2bt-base-{m}"))
        limit = effective_memory_limit(base.get("memory", "/"))
        assert limit <= MEM_MB << 20, f"precondition: no {MEM_MB} MiB limit found: {base}"

        r = sc.attack(
            sbx,
            sc.CGROUPS,
            user,
            {"marker": m, "victim_freezer": vfreezer, "victim_id": vsbx.sandbox_id},
        )
        if escapes(r):
            problems.append(f"cgroup mounts/writes that worked: {escapes(r)}")
        moved = host_cgroups(host_pid_by_argv0(f"e2bt-moved-{m}"))
        for ctl in ("memory", "pids", "freezer", "cpu"):
            if base.get(ctl) != moved.get(ctl):
                problems.append(f"a process left its {ctl} cgroup: {base.get(ctl)} -> {moved}")
        after = effective_memory_limit(base.get("memory", "/"))
        if after > MEM_MB << 20:
            problems.append(f"the memory limit was raised from {limit} to {after}")
        if err := alive(vsbx, timeout=5):
            problems.append(f"the other sandbox stopped answering (frozen?): {err}")
        thaw(vfreezer)
        try:
            out = sbx.commands.run(
                "python3 -c \"b = b'x' * (400 << 20); print('survived')\"", user=user, timeout=60
            )
            problems.append(f"allocated 400 MiB under a {MEM_MB} MiB limit: {out.stdout!r}")
        except CommandExitException as e:
            if "survived" in e.stdout:
                problems.append("the allocation survived")
    finally:
        thaw(vfreezer)
        sbx.kill()
    assert not problems, "\n".join(problems)


# -- 3. /proc/sys and masked /proc, /sys paths -----------------------------------------------


def _sysctl_writes() -> dict[str, str]:
    def other(v: str, a: str, b: str) -> str:
        return b if v.strip() == a else a

    cur = {
        p: Path("/proc/sys", p).read_text().strip()
        for p in (
            "kernel/pid_max",
            "kernel/core_pattern",
            "kernel/randomize_va_space",
            "kernel/hostname",
            "vm/overcommit_memory",
            "vm/max_map_count",
            "fs/protected_symlinks",
            "net/ipv4/ip_forward",
            "net/core/somaxconn",
        )
        if Path("/proc/sys", p).exists()
    }
    new = {
        "kernel/pid_max": str(int(cur.get("kernel/pid_max", "32768")) - 1),
        "kernel/core_pattern": "|/bin/true e2bt",
        "kernel/randomize_va_space": other(cur.get("kernel/randomize_va_space", "2"), "0", "2"),
        "kernel/hostname": "e2bt-" + rand(),
        "vm/overcommit_memory": other(cur.get("vm/overcommit_memory", "0"), "0", "1"),
        "vm/max_map_count": str(int(cur.get("vm/max_map_count", "65530")) - 1),
        "fs/protected_symlinks": other(cur.get("fs/protected_symlinks", "1"), "0", "1"),
        "net/ipv4/ip_forward": other(cur.get("net/ipv4/ip_forward", "0"), "0", "1"),
        "net/core/somaxconn": str(int(cur.get("net/core/somaxconn", "4096")) - 1),
    }
    return {k: v for k, v in new.items() if k in cur}


def _sysctl_snapshot(paths: list[str]) -> dict[str, str]:
    return {p: Path("/proc/sys", p).read_text() for p in paths}


@users
@internet
def test_proc_sys_and_masked_paths(boxes: dict[bool, Sandbox], user: str, internet: bool) -> None:
    writes = _sysctl_writes()
    before = _sysctl_snapshot(list(writes))
    masked = [
        p
        for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug")
        if os.path.exists(p)
    ]
    masked_dirs = [
        p
        for p in ("/proc/acpi", "/proc/asound", "/proc/scsi", "/sys/firmware")
        if os.path.isdir(p) and os.listdir(p)
    ]
    try:
        r = sc.attack(
            boxes[internet],
            sc.PROC_SYS,
            user,
            {"writes": writes, "masked": masked, "masked_dirs": masked_dirs},
        )
        after = _sysctl_snapshot(list(writes))
        changed = {p: (before[p], after[p]) for p in writes if before[p] != after[p]}
        assert not changed, f"a sandbox changed host kernel settings: {changed}"
        assert not escapes(r), f"attempts that worked: {escapes(r)}"
    finally:
        for p, v in before.items():
            if Path("/proc/sys", p).read_text() != v:
                Path("/proc/sys", p).write_text(v)


# -- 4. host secrets -------------------------------------------------------------------------

SECRET_PATHS = ("/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-")


def _host_secrets() -> dict[str, bytes]:
    paths = [*SECRET_PATHS, *glob.glob("/etc/ssh/ssh_host_*key")]
    return {p: Path(p).read_bytes() for p in paths if os.path.isfile(p)}


def _leaks(content: bytes, host: bytes) -> bool:
    """The host's file, or one of its hashed-password / key lines, is in `content`."""
    if not host.strip():
        return False
    if content == host or (len(host) > 64 and host in content):
        return True
    secret_lines = [
        ln
        for ln in host.splitlines()
        if (b":$" in ln) or (b"PRIVATE KEY" not in ln and len(ln) > 40 and b":" not in ln)
    ]
    return any(ln in content for ln in secret_lines)


@users
@internet
def test_host_secrets_never_readable(boxes: dict[bool, Sandbox], user: str, internet: bool) -> None:
    host = _host_secrets()
    if not host:
        pytest.skip("the host has none of /etc/shadow, gshadow, ssh host keys")
    sbx = boxes[internet]
    paths = [*host, *("/proc/1/root" + p for p in host), *("/proc/self/root" + p for p in host)]
    r = sc.attack(sbx, sc.READ_FILES, user, {"paths": paths})
    leaked = []
    for name, v in r.items():
        if sc.ok(v):
            path = name.removeprefix("read:").removeprefix("/proc/1/root")
            path = path.removeprefix("/proc/self/root")
            if _leaks(base64.b64decode(v[3:]), host[path]):
                leaked.append(name)
    assert not leaked, f"host secrets read in the sandbox as {user}: {leaked}"

    served = []
    for p in host:
        try:
            data = sbx.files.read(p, format="bytes", user=user)
        except SandboxException:
            continue
        if user == "user" and p.startswith(("/etc/shadow", "/etc/gshadow")):
            served.append(f"{p} (mode 0640 root:shadow) served to the default user")
        if _leaks(bytes(data), host[p]):
            served.append(f"{p}: the host's content")
    assert not served, f"files API as {user}: {served}"


# -- 5. network ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def listeners() -> Iterator[HostListeners]:
    lst = HostListeners()
    yield lst
    lst.close()


@pytest.fixture(scope="module")
def netns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsTarget]:
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2's `ip` to build the test's own network namespace")
    t = NetnsTarget(tmp_path_factory.mktemp("netns")).start()
    yield t
    t.close()


@users
@internet
def test_host_network_unreachable(
    local: LocalServer,
    boxes: dict[bool, Sandbox],
    listeners: HostListeners,
    user: str,
    internet: bool,
) -> None:
    """Host loopback, the host's own addresses and e2b-local's port: TCP, UDP and raw IP."""
    marker = "e2bt-net-" + rand()
    seen = len(listeners.contacts)
    api_port = int(local.url.rsplit(":", 1)[1])
    addrs = ["127.0.0.1", "::1", *host_addresses()]
    args = {
        "marker": marker,
        "targets": [
            *([a, listeners.tcp_port] for a in addrs),
            ["127.0.0.1", api_port],
            ["127.0.0.2", listeners.tcp_port],
        ],
        "http": [["127.0.0.1", api_port]],
        "udp_targets": [[a, listeners.udp_port] for a in addrs],
        "gateway_tcp": listeners.tcp_port,
        "gateway_udp": listeners.udp_port,
    }
    r = sc.attack(boxes[internet], sc.NETWORK, user, args)
    time.sleep(0.3)
    contacts = listeners.contacts[seen:]
    assert not contacts, f"host listeners were reached from the sandbox: {contacts}\n{r}"
    assert not escapes(r, "tcp:", "http:"), (
        f"connections that worked: {escapes(r, 'tcp:', 'http:')}"
    )


@needs_ip
@users
@internet
def test_metadata_address_unreachable(
    boxes: dict[bool, Sandbox], netns: NetnsTarget, user: str, internet: bool
) -> None:
    netns.add_address(METADATA)
    try:
        assert "e2bt-netns-ok" in host_fetch(METADATA), "control: the host reaches the target"
        seen = len(netns.contacts(METADATA))
        r = sc.attack(
            boxes[internet], sc.NETWORK, user, {"marker": rand(), "targets": [[METADATA, 80]]}
        )
        got = netns.contacts(METADATA)[seen:]
        assert not got and not escapes(r), f"{METADATA} reached from the sandbox: {got} {r}"
    finally:
        netns.del_address(METADATA)


@needs_ip
@internet
def test_internet_on_reaches_outside_addresses(
    boxes: dict[bool, Sandbox], netns: NetnsTarget, internet: bool
) -> None:
    """Positive control of the network tests: internet on reaches a non-host address."""
    netns.add_address(OUTSIDE)
    try:
        assert "e2bt-netns-ok" in host_fetch(OUTSIDE), "control: the host reaches the target"
        seen = len(netns.contacts(OUTSIDE))
        r = sc.attack(
            boxes[internet], sc.NETWORK, "user", {"marker": rand(), "targets": [[OUTSIDE, 80]]}
        )
        reply = r[f"tcp:{OUTSIDE}:80"]
        got = netns.contacts(OUTSIDE)[seen:]
        if internet:
            assert "e2bt-netns-ok" in reply and got, f"internet on, {OUTSIDE} unreachable: {r}"
        else:
            assert not sc.ok(reply) and not got, f"internet off, yet {OUTSIDE} reached: {r}"
    finally:
        netns.del_address(OUTSIDE)


# -- 6. e2b-local's own API ------------------------------------------------------------------


def test_upload_url_and_admin_need_auth(local: LocalServer) -> None:
    key = {"X-API-Key": local.api_key}
    tpl = httpx.post(
        f"{local.url}/v3/templates", json={"name": "e2bt-upload-" + rand()}, headers=key
    )
    tpl.raise_for_status()
    tid = tpl.json()["templateID"]
    try:
        h1, h2 = secrets.token_hex(32), secrets.token_hex(32)
        link = httpx.get(f"{local.url}/templates/{tid}/files/{h1}", headers=key).json()
        original = b"original " + rand().encode()
        assert httpx.put(link["url"], content=original).status_code == 200, "control upload"
        stored = [p for p in state_files(local.state_dir) if h1 in p.name]
        assert stored and all(p.read_bytes() == original for p in stored), stored

        bare1 = f"{local.url}/_e2b_local/uploads/{h1}"
        bare2 = f"{local.url}/_e2b_local/uploads/{h2}"
        query = link["url"].partition("?")[2]
        attempts = {
            "PUT no token": httpx.put(bare1, content=b"evil"),
            "POST no token": httpx.post(bare1, content=b"evil"),
            "PUT forged token": httpx.put(bare1 + "?token=" + "0" * 64, content=b"evil"),
            "PUT forged token, real fields": httpx.put(
                bare1 + "?" + query.replace("token=", "token=0"), content=b"evil"
            ),
            "PUT new hash, no token": httpx.put(bare2, content=b"evil"),
            "PUT new hash, token of another file": httpx.put(
                bare2 + ("?" + query if query else ""), content=b"evil"
            ),
            "PUT new hash, wrong API key": httpx.put(
                bare2, content=b"evil", headers={"X-API-Key": "e2b_wrong"}
            ),
        }
        accepted = {
            k: r.status_code for k, r in attempts.items() if r.status_code not in (401, 403)
        }
        assert not accepted, f"unauthenticated uploads not refused with 401/403: {accepted}"
        assert all(p.read_bytes() == original for p in stored), "a stored upload was replaced"
        assert not [p for p in state_files(local.state_dir) if h2 in p.name], "h2 was stored"
    finally:
        httpx.delete(f"{local.url}/templates/{tid}", headers=key)

    before = httpx.get(f"{local.url}/admin/faults", headers=key).json()
    for method in ("GET", "POST", "DELETE"):
        for headers in ({}, {"X-API-Key": "e2b_wrong"}):
            r = httpx.request(
                method, f"{local.url}/admin/faults", json={"spec": "503:1"}, headers=headers
            )
            assert r.status_code == 401, (method, headers, r.status_code)
    assert httpx.get(f"{local.url}/admin/faults", headers=key).json() == before


# -- 7. files API permissions ----------------------------------------------------------------


def test_files_api_acts_as_the_requested_user(local: LocalServer) -> None:
    sbx = Sandbox.create(allow_internet_access=False, **local.kw)
    m = rand()
    host = HostPaths(
        Path("/etc/profile.d/e2bt-evil.sh"),
        Path("/root/x"),
        Path("/usr/local/bin/x"),
        Path("/etc/sudoers.d/e2bt"),
    )
    host_passwd = Path("/etc/passwd").read_text()
    try:
        passwd = sbx.commands.run("cat /etc/passwd", user="root").stdout
        writes = {
            "/etc/profile.d/e2bt-evil.sh": f"echo EVIL-{m}\n",
            "/etc/passwd": passwd + f"e2bt{m}::0:0::/root:/bin/bash\n",
            "/root/x": f"EVIL-{m}\n",
            "/usr/local/bin/x": f"#!/bin/sh\necho EVIL-{m}\n",
            "/etc/sudoers.d/e2bt": "user ALL=(ALL) NOPASSWD: ALL\n",
            "/home/user/../../etc/e2bt-dotdot": f"EVIL-{m}\n",
        }
        allowed = []
        for path, data in writes.items():
            try:
                sbx.files.write(path, data)
                allowed.append(f"write {path}")
            except (SandboxException, PermissionError):
                pass
        others = {
            "remove /etc/hostname": lambda: sbx.files.remove("/etc/hostname"),
            "rename /etc/hosts": lambda: sbx.files.rename("/etc/hosts", "/home/user/hosts"),
            "make_dir /etc/e2bt-dir": lambda: sbx.files.make_dir("/etc/e2bt-dir"),
            "read /root": lambda: sbx.files.list("/root"),
        }
        for name, fn in others.items():
            try:
                fn()
                allowed.append(name)
            except (SandboxException, PermissionError):
                pass
        out = sbx.commands.run(
            "bash -lc true; cat /etc/passwd; ls -a /root /usr/local/bin /etc/profile.d "
            "/etc/sudoers.d /etc; true",
            user="root",
        ).stdout
        effects = [
            s
            for s in (f"EVIL-{m}", f"e2bt{m}", "e2bt-evil.sh", "e2bt-dir", "e2bt-dotdot")
            if s in out
        ]
        effects += [f for f in ("hostname", "hosts") if f"\n{f}\n" not in out]
        assert not allowed and not effects, f"the default user could: {allowed}; {effects}"

        for path, data in writes.items():  # control: root inside may change its own filesystem
            sbx.files.write(path, data, user="root")
        out = sbx.commands.run("bash -lc true; getent passwd e2bt" + m, user="root").stdout
        assert f"EVIL-{m}" in out and f"e2bt{m}:" in out, out
        assert not host.present(), f"sandbox files appeared on the host: {host.present()}"
        assert Path("/etc/passwd").read_text() == host_passwd
    finally:
        sbx.kill()
        host.remove()


# -- 8. standard container escapes -----------------------------------------------------------


HOST_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty")


@users
@internet
def test_proc_root_and_device_nodes(boxes: dict[bool, Sandbox], user: str, internet: bool) -> None:
    m = rand()
    host = HostPaths(
        Path(f"/opt/e2bt-opt-{m}"),
        Path(f"/opt/e2bt-p1opt-{m}"),
        Path(f"/e2bt-p1-{m}"),
        Path(f"/e2bt-self-{m}"),
        Path(f"/e2bt-pid-{m}"),
    )
    devs = [d for d in HOST_DEVICES if os.path.exists(d)]
    before = {d: stat_sig(d) for d in devs}
    sbx = boxes[internet]
    try:
        sbx.commands.run(f"exec -a e2bt-uid-{m} sleep 30", background=True, user="root")
        root_uid = host_uid(host_pid_by_argv0(f"e2bt-uid-{m}"))
        owned = [d for d in devs if os.stat(d).st_uid == root_uid]
        r = sc.attack(sbx, sc.PROC_ROOT, user, {"marker": m})
        changed = {d: (before[d], stat_sig(d)) for d in devs if stat_sig(d) != before[d]}
        listing = r["list /proc/1/root"]
        problems = [
            *(f"the host's {d} is owned by the sandbox root (host uid {root_uid})" for d in owned),
            *(f"the host's {d} was changed from the sandbox: {v}" for d, v in changed.items()),
            *(f"sandbox write reached the host: {p}" for p in host.present()),
        ]
        if sc.ok(r["list /proc/1/root/work"]) or ",work," in f",{listing[3:]},":
            problems.append(f"/proc/1/root shows the host's root: {listing}")
        if user == "root" and not sc.ok(listing):
            problems.append(f"root cannot list its own sandbox's root at /proc/1/root: {listing}")
        assert not problems, "\n".join(problems)
    finally:
        host.remove()
        for d, sig in before.items():
            if stat_sig(d) != sig:
                restore_stat(d, sig)


@users
@internet
def test_ptrace_and_signals_to_host_processes(
    local: LocalServer, boxes: dict[bool, Sandbox], user: str, internet: bool
) -> None:
    pids = {"pytest": os.getpid(), "e2b-local": local.proc.pid}
    host_cmd = {n: Path(f"/proc/{p}/cmdline").read_bytes().decode() for n, p in pids.items()}
    r = sc.attack(boxes[internet], sc.PTRACE, user, {"pids": pids})
    problems = []
    for name in pids:
        same = r[f"cmdline:{name}"] == host_cmd[name]
        if same:
            problems.append(f"the sandbox sees host process {name}: {r[f'cmdline:{name}']!r}")
        for op in ("kill0", "ptrace", "environ"):
            if sc.ok(r[f"{op}:{name}"]) and same:
                problems.append(f"{op} of host {name} worked: {r[f'{op}:{name}']}")
    for name, pid in pids.items():
        status = Path(f"/proc/{pid}/status").read_text()
        if "\nTracerPid:\t0\n" not in status:
            problems.append(f"host process {name} is being traced")
    assert not problems, "\n".join(problems)


@pytest.mark.skipif(platform.machine() != "x86_64", reason="syscall numbers are x86_64's")
@users
@internet
def test_privileged_operations_fail(boxes: dict[bool, Sandbox], user: str, internet: bool) -> None:
    """unshare, mount, sethostname, module loading, kexec, keyrings, bpf, clock, I/O ports,
    open_by_handle_at (the 'shocker' escape), dmesg."""
    hostname = socket.gethostname()
    r = sc.attack(boxes[internet], sc.PRIVILEGED, user, {"marker": rand()})
    assert socket.gethostname() == hostname, "the host's hostname changed"
    assert not escapes(r), "privileged operations that worked:\n" + "\n".join(
        f"  {k}: {v}" for k, v in escapes(r).items()
    )


STANDARD_DEVICES = {(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2)}


@internet
def test_dev_holds_only_standard_nodes(boxes: dict[bool, Sandbox], internet: bool) -> None:
    r = sc.attack(boxes[internet], sc.DEV_LIST, "root")
    nodes = json.loads(r["_nodes"])
    odd = [
        n for n in nodes if n[1] == "blk" or ((n[2], n[3]) not in STANDARD_DEVICES and n[2] != 136)
    ]
    assert not odd, f"non-standard device nodes in /dev: {odd}"
    assert {"/dev/null", "/dev/zero", "/dev/urandom"} <= {n[0] for n in nodes}, nodes


RACE_ROUNDS = 30


@users
def test_files_api_symlink_race(local: LocalServer, user: str) -> None:
    """Swap directories with symlinks to /, /proc/1/root/ and a host path while the files API
    writes and reads through them: nothing of the host is ever written or read."""
    r = rand()
    canary = Path(f"/tmp/e2bt-canary-{r}")
    canary.mkdir()
    canary.chmod(0o777)
    secret = f"host-secret-{rand()}\n"
    (canary / "secret").write_text(secret)
    (canary / "secret").chmod(0o666)
    sbx = Sandbox.create(allow_internet_access=False, **local.kw)
    base = f"/home/user/race-{r}"
    rel = str(canary).lstrip("/")
    try:
        loop = sbx.commands.run(
            f"python3 -c 'import os; exec(os.environ[\"E2BT_SRC\"])' {base} {canary} 60",
            envs={"E2BT_SRC": sc.RACE_LOOP},
            background=True,
            user=user,
        )
        deadline = time.monotonic() + 10
        while not sbx.files.exists(f"{base}/ready", user=user):
            assert time.monotonic() < deadline, "the race loop did not start"
            time.sleep(0.02)
        targets = {"d1": f"{base}/d1/{rel}", "d2": f"{base}/d2/{rel}", "d3": f"{base}/d3"}
        leaks, writes = [], 0
        for i in range(RACE_ROUNDS):
            for d, p in targets.items():
                with contextlib.suppress(SandboxException):
                    sbx.files.write(f"{p}/w{i}", f"race-{r}", user=user)
                    writes += 1
                with contextlib.suppress(SandboxException):
                    if secret.strip() in sbx.files.read(f"{p}/secret", user=user):
                        leaks.append(f"{d} read the host's secret")
        sbx.files.write(f"{base}/stop", "", user=user)
        try:
            out = loop.wait().stdout
        except CommandExitException as e:
            out = f"{e.stdout}{e.stderr} (exit {e.exit_code})"
        assert "racing" in out, out
        on_host = sorted(os.listdir(canary))
        assert not leaks, leaks
        assert on_host == ["secret"], f"the files API wrote on the host: {on_host}"
        assert (canary / "secret").read_text() == secret
        # the race is real only if writes went through while the names were being swapped
        assert writes >= RACE_ROUNDS // 2, f"only {writes} writes went through"
    finally:
        sbx.kill()
        shutil.rmtree(canary, ignore_errors=True)


# -- 9. several servers on one host ----------------------------------------------------------


def test_two_servers_keep_their_sandboxes(local: LocalServer, tmp_path: Path) -> None:
    a = Sandbox.create(allow_internet_access=False, **local.kw)
    problems: list[str] = []
    second: LocalServer | None = start_server(tmp_path / "state2")
    try:
        b = Sandbox.create(allow_internet_access=False, **second.kw)
        third = start_server(tmp_path / "state3")
        try:
            c = Sandbox.create(**third.kw)
            problems += [f"after a third server started: {e}" for e in (alive(a), alive(b)) if e]
            problems += [e for e in (alive(c),) if e]
        finally:
            stop_server(third)
        problems += [f"after the third server stopped: {e}" for e in (alive(a), alive(b)) if e]
        stop_server(second)
        second = None
        problems += [f"after the second server stopped: {e}" for e in (alive(a),) if e]
        second = start_server(tmp_path / "state2")
        problems += [f"after the second server restarted: {e}" for e in (alive(a),) if e]
        b2 = Sandbox.create(**second.kw)
        problems += [e for e in (alive(b2),) if e]
        stop_server(second)
        second = None
        problems += [f"after the restarted server stopped: {e}" for e in (alive(a),) if e]
    finally:
        if second is not None:
            stop_server(second)
        with contextlib.suppress(Exception):
            a.kill()
    assert not problems, "\n".join(problems)


# -- 10. the API key -------------------------------------------------------------------------


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def test_api_key_not_in_ps_logs_or_sandboxes(tmp_path: Path) -> None:
    state = tmp_path / "st"
    srv = start_server(state)
    key = srv.api_key
    problems: list[str] = []
    try:
        s = Sandbox.create(**srv.kw)
        s.commands.run("sleep 30 &", user="root")
        r = sc.attack(s, sc.FIND_BYTES, "root", {"reversed": key[::-1]})
        if sc.ok(r["found"]):
            problems.append(f"the key is visible inside the sandbox: {r['found']}")
        ps = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
        problems += [f"in `ps`: {ln[:300]}" for ln in ps.splitlines() if key in ln]
        for d in Path("/proc").iterdir():
            with contextlib.suppress(OSError):
                if d.name.isdigit() and key.encode() in (d / "cmdline").read_bytes():
                    problems.append(f"on the command line of pid {d.name}")
        for pid in _descendants(srv.proc.pid):
            with contextlib.suppress(OSError):
                if key.encode() in Path(f"/proc/{pid}/environ").read_bytes():
                    problems.append(f"in the environment of the server's child {pid}")
        s.kill()
    finally:
        out = stop_server(srv)
    if key in out:
        problems.append("in the server's output: " + out[out.index(key) - 80 :][:200])
    for f in state_files(state):
        with contextlib.suppress(OSError):
            if key.encode() in f.read_bytes() and f.stat().st_mode & 0o077:
                problems.append(f"in {f}, mode {oct(f.stat().st_mode)}")
    assert not problems, "\n".join(problems)
