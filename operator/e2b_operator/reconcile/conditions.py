"""metav1.Condition bookkeeping: lastTransitionTime moves only when status flips."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..api import Condition


@dataclass(frozen=True)
class Want:
    """A condition as a decision wants it, before transition times are merged in."""

    type: str
    status: bool
    reason: str
    message: str = ""


def merge(
    previous: list[Condition], wanted: list[Want], *, generation: int, now: datetime
) -> list[Condition]:
    """The new condition list: previous transition times kept where status did not change."""
    before = {c.type: c for c in previous}
    merged = []
    for want in wanted:
        status = "True" if want.status else "False"
        old = before.get(want.type)
        since = old.last_transition_time if old and old.status == status else now
        merged.append(
            Condition(
                type=want.type,
                status=status,
                reason=want.reason,
                message=want.message[:32768],
                observed_generation=generation,
                last_transition_time=since,
            )
        )
    return merged
