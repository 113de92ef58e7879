"""Following a running execution's output from its status, line by line.

The operator keeps each stream's last 4 KiB (stdoutTail) and its total length so far
(stdoutChars) in status; comparing the total with what was already seen tells which end of
the tail is new. Output faster than the status updates can lose its middle: that is reported
as a gap, never as wrong text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

STREAMS = ("stdout", "stderr")


class OutputCursor:
    """What of an execution's output was already seen, and the unfinished last lines."""

    def __init__(self) -> None:
        self.seen = dict.fromkeys(STREAMS, 0)
        self.partial = dict.fromkeys(STREAMS, "")

    def advance(self, status: Mapping[str, Any], final: bool = False) -> list[dict[str, Any]]:
        """Events for what is new in this status: {"event": "output", "stream", "line"} per
        complete line (and, when final, the unterminated rest), {"event": "gap", "stream",
        "chars"} for output that was never visible."""
        events: list[dict[str, Any]] = []
        for stream in STREAMS:
            tail = status.get(f"{stream}Tail") or ""
            total = status.get(f"{stream}Chars")
            if total is None:  # no live counts (an older operator): the tail when done
                total = len(tail) if final else self.seen[stream]
            new = total - self.seen[stream]
            if new > 0:
                if new > len(tail):
                    events.append({"event": "gap", "stream": stream, "chars": new - len(tail)})
                    self.partial[stream] = ""
                self.seen[stream] = total
                text = self.partial[stream] + tail[max(0, len(tail) - new) :]
                *lines, self.partial[stream] = text.split("\n")
                events += [{"event": "output", "stream": stream, "line": ln} for ln in lines]
            if final and self.partial[stream]:
                events.append({"event": "output", "stream": stream, "line": self.partial[stream]})
                self.partial[stream] = ""
        return events
