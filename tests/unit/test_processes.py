"""Stopping processes by PID safely: the program's name is checked, signals go by pidfd."""

from __future__ import annotations

from pathlib import Path

from e2b_operator.controlplane import processes


def test_a_name_matches_the_program_not_any_argument(tmp_path: Path) -> None:
    # kube-apiserver's --etcd-servers=... must not make it pass for etcd
    pid = processes.spawn(["sleep", "30"], tmp_path / "log")
    other = processes.spawn(["bash", "-c", "sleep 30; true", "--etcd-servers=x"], tmp_path / "log")
    try:
        assert processes.alive(pid, "sleep")
        assert processes.alive(other, "bash")
        assert not processes.alive(other, "etcd")
    finally:
        processes.stop(pid, "sleep", timeout=5)
        processes.stop(other, "bash", timeout=5)
    assert not processes.alive(other)
    assert not processes.alive(pid)


def test_a_process_answers_to_its_name_as_soon_as_spawn_returns(tmp_path: Path) -> None:
    # Right after the exec, /proc/<pid>/cmdline reads empty for a moment: spawn waits it out.
    pids = []
    try:
        for _ in range(20):
            pids.append(processes.spawn(["bash", "-c", "sleep 30; true"], tmp_path / "log"))
            assert processes.alive(pids[-1], "bash"), "a process just spawned called gone"
    finally:
        for pid in pids:
            processes.stop(pid, "bash", timeout=5)


def test_stop_escalates_to_sigkill_and_leaves_no_zombie(tmp_path: Path) -> None:
    script = "trap '' TERM; sleep 30 & wait"
    pid = processes.spawn(["bash", "-c", script], tmp_path / "log")
    processes.wait_until(
        lambda: b"trap" in Path(f"/proc/{pid}/cmdline").read_bytes(),
        pid=pid,
        name="bash",
        log_path=tmp_path / "log",
        timeout=10,
    )
    processes.stop(pid, "bash", timeout=0.5)
    assert not Path(f"/proc/{pid}").exists() or not processes.alive(pid)
