"""The E2B API key of the stack never shows: not in logs, events, status or command lines."""

from __future__ import annotations

import stat
import subprocess

from support import apply, deployment, template, wait_condition


def test_api_key_is_in_no_log_event_status_or_command_line(kube, namespace, e2b, operator):
    apply(kube, namespace, template("quiet"))
    wait_condition(kube, namespace, "e2bt", "quiet", "Ready", 120, operator.tail)
    apply(kube, namespace, deployment("quiet", "quiet", replicas=1))
    wait_condition(kube, namespace, "e2bd", "quiet", "Ready", 90, operator.tail)

    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    events = kube.kubectl("get", "events", "-A", "-o", "json").stdout
    objects = kube.kubectl("get", "e2bt,e2bd,e2bx", "-A", "-o", "json").stdout
    for log in (operator.log, e2b.log):
        assert stat.S_IMODE(log.stat().st_mode) == 0o600, log
        assert e2b.api_key not in log.read_text(), log
    assert e2b.api_key not in ps + events + objects
