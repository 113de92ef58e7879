"""What output from inside a sandbox may show outside it: masked and bounded. No I/O.

Hook output (a health check's stderr, a main script's exit) goes into status, events and the
operator log. Values the deployment took from Secrets are replaced by MASK there (each line
of a multi-line value too), and the text is cut to a bounded length (its end, where errors
are), so a check that prints its environment leaks nothing and a chatty one floods nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

MASK = "****"
MIN_LINE = 4
"""Lines of a multi-line secret shorter than this are not masked on their own."""


def mask(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value replaced by MASK, longest first."""
    needles: set[str] = set()
    for value in secrets:
        if value:
            needles.add(value)
            needles.update(
                line.strip() for line in value.splitlines() if len(line.strip()) >= MIN_LINE
            )
    for needle in sorted(needles, key=len, reverse=True):
        text = text.replace(needle, MASK)
    return text


def shown(text: str, secrets: Iterable[str], limit: int) -> str:
    """Masked, stripped and cut to its last ``limit`` characters ("..." marks a cut)."""
    text = mask(text, secrets).strip()
    return text if len(text) <= limit else "..." + text[-(limit - 3) :]
