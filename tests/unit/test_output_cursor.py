"""OutputCursor: new lines from successive execution statuses (tail + running total)."""

from __future__ import annotations

from e2b_operator.api.execution import TAIL_CHARS
from e2b_operator.toolkit.output import OutputCursor


def status(stdout: str = "", stderr: str = "", **extra) -> dict:
    """What the operator writes after `stdout`/`stderr` were printed in total."""
    return {
        "stdoutTail": stdout[-TAIL_CHARS:],
        "stdoutChars": len(stdout),
        "stderrTail": stderr[-TAIL_CHARS:],
        "stderrChars": len(stderr),
        **extra,
    }


def lines(events: list[dict], stream: str = "stdout") -> list[str]:
    return [e["line"] for e in events if e["event"] == "output" and e["stream"] == stream]


def test_each_line_once_partial_lines_wait_for_their_end() -> None:
    cursor = OutputCursor()
    assert cursor.advance({}) == []
    assert lines(cursor.advance(status("a\nb"))) == ["a"]
    assert lines(cursor.advance(status("a\nb"))) == []  # nothing new
    assert lines(cursor.advance(status("a\nbc\nd\n", "oops\n"))) == ["bc", "d"]
    assert lines(cursor.advance(status("a\nbc\nd\n", "oops\n")), "stderr") == []
    final = cursor.advance(status("a\nbc\nd\n{}", "oops\n"), final=True)
    assert lines(final) == ["{}"]


def test_output_faster_than_the_tail_is_a_gap_not_wrong_text() -> None:
    cursor = OutputCursor()
    cursor.advance(status("first\npart"))  # "part" waits for the rest of its line ...
    flood = "first\npart" + "".join(f"line {i}\n" for i in range(2000))
    events = cursor.advance(status(flood))
    assert events[0]["event"] == "gap" and events[0]["chars"] == len(flood) - 10 - TAIL_CHARS
    shown = lines(events)
    assert shown[-1] == "line 1999" and all(s.startswith("line ") for s in shown[1:])
    # ... which fell into the gap: the first line shown is the end of a real one, no "part"
    assert shown[0] + "\n" in flood and not shown[0].startswith("part")


def test_without_live_totals_the_tail_is_shown_when_finished() -> None:
    cursor = OutputCursor()
    old = {"stdoutTail": "x\n{}"}
    assert cursor.advance(old) == []
    assert lines(cursor.advance(old, final=True)) == ["x", "{}"]
