"""Creates, deletes, pauses and resumes in flight, so a stale listing never over-creates,
resurrects, or reports a paused sandbox as running (or the reverse).

A sandbox the operator created counts as present until a listing shows it, a listing that
started after its create returned does not (it is gone: killed or crashed in between), or a
TTL passes; one it killed counts as gone until a listing stops showing it; one it paused or
resumed has that state until a listing started after the call, or the TTL (unconfirmed
meanwhile: a resumed sandbox is not ready before a listing shows it running).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .observed import ObservedSandbox, SandboxState

TTL_SECONDS = 60.0


@dataclass
class Expectations:
    created: dict[str, tuple[ObservedSandbox, float]] = field(default_factory=dict)
    deleted: dict[str, float] = field(default_factory=dict)
    states: dict[str, tuple[SandboxState, float]] = field(default_factory=dict)

    def expect_created(self, sandbox: ObservedSandbox, now: float) -> None:
        self.created[sandbox.sandbox_id] = (sandbox, now)

    def expect_deleted(self, sandbox_id: str, now: float) -> None:
        self.created.pop(sandbox_id, None)
        self.deleted[sandbox_id] = now
        self.states.pop(sandbox_id, None)

    def expect_state(self, sandbox_id: str, state: SandboxState, now: float) -> None:
        """A pause ("paused") or resume ("running") returned at ``now``."""
        self.states[sandbox_id] = (state, now)

    def apply(
        self, listed: list[ObservedSandbox], now: float, listed_at: float | None = None
    ) -> list[ObservedSandbox]:
        """The listing (taken at `listed_at`, if known) corrected by what is in flight;
        settled expectations are dropped."""
        seen = {s.sandbox_id for s in listed}
        for sid, (_, since) in list(self.created.items()):
            later = listed_at is not None and listed_at > since
            if sid in seen or later or now - since > TTL_SECONDS:
                del self.created[sid]
        for sid, since in list(self.deleted.items()):
            if sid not in seen or now - since > TTL_SECONDS:
                del self.deleted[sid]
        for sid, (_, since) in list(self.states.items()):
            if (listed_at is not None and listed_at > since) or now - since > TTL_SECONDS:
                del self.states[sid]
        present = [
            replace(s, state=self.states[s.sandbox_id][0], confirmed=False)
            if s.sandbox_id in self.states and self.states[s.sandbox_id][0] != s.state
            else s
            for s in listed
            if s.sandbox_id not in self.deleted
        ]
        present += [s for s, _ in self.created.values()]
        return present
