"""API keys as teams: each key belongs to one team, which sees only its own sandboxes and
templates, as on E2B.

The server's key (`$E2B_LOCAL_API_KEY`, `--api-key-file` or the generated one) is team
`default`. More come from `--teams-file PATH` and `$E2B_LOCAL_TEAMS`, one `TEAM=KEY` a line
(blank lines and `#` comments allowed; in the variable, commas separate entries too). A team
may have several keys; a key belongs to one team. The file is read again when it changes
(checked at most once a second), so teams and keys come and go without a restart; a file that
no longer parses keeps the previous teams and logs which line is wrong. Keys are never printed:
errors name the line, never its value.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from pathlib import Path

log = logging.getLogger("e2b_local.teams")

DEFAULT_TEAM = "default"
TEAM_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
RELOAD_CHECK_S = 1.0


def _digest(key: str) -> bytes:
    """What a key is looked up by: equal keys, equal digests, with no early exit on a prefix."""
    return hashlib.sha256(key.encode()).digest()


def parse(text: str, source: str) -> dict[bytes, str]:
    """Key digests to team names from `TEAM=KEY` entries; ValueError naming the bad line."""
    out: dict[bytes, str] = {}
    entries = [
        (n, e.strip())
        for n, line in enumerate(text.splitlines(), 1)
        if not line.strip().startswith("#")
        for e in line.split(",")
        if e.strip()
    ]
    for n, entry in entries:
        team, sep, key = (p.strip() for p in entry.partition("="))
        where = f"{source}, line {n}"
        if not sep or not key:
            raise ValueError(f"{where}: expected TEAM=KEY")
        if not TEAM_RE.match(team):
            raise ValueError(
                f"{where}: team {team!r} must be 1-63 lowercase letters, digits and '-'"
            )
        digest = _digest(key)
        if out.get(digest, team) != team:
            raise ValueError(f"{where}: this key already belongs to team {out[digest]!r}")
        out[digest] = team
    return out


class Teams:
    """Which team an API key belongs to."""

    def __init__(self, default_key: str, env_text: str = "", file: Path | None = None) -> None:
        self._fixed = parse(f"{DEFAULT_TEAM}={default_key}", "the server's API key")
        self._merge(self._fixed, parse(env_text, "$E2B_LOCAL_TEAMS"), "$E2B_LOCAL_TEAMS")
        self.file = file
        self._signature: tuple[int, int, int] | None = None
        self._checked = 0.0
        self._keys = dict(self._fixed)
        if file is not None:
            self._keys = self._load(file)  # ValueError at start-up: the CLI reports it

    @staticmethod
    def _merge(into: dict[bytes, str], more: dict[bytes, str], source: str) -> None:
        for digest, team in more.items():
            if into.get(digest, team) != team:
                raise ValueError(f"{source}: a key of team {team!r} is team {into[digest]!r}")
            into[digest] = team

    def _load(self, file: Path) -> dict[bytes, str]:
        try:
            st = file.stat()
            text = file.read_text()
        except OSError as e:
            raise ValueError(f"--teams-file: {e.strerror}: {file}") from e
        except UnicodeDecodeError as e:
            raise ValueError(f"--teams-file: {file} is not UTF-8 text") from e
        keys = dict(self._fixed)
        self._merge(keys, parse(text, str(file)), str(file))
        self._signature = (st.st_ino, st.st_mtime_ns, st.st_size)
        return keys

    def _refresh(self) -> None:
        if self.file is None or time.monotonic() - self._checked < RELOAD_CHECK_S:
            return
        self._checked = time.monotonic()
        try:
            st = self.file.stat()
        except OSError:
            return
        if (st.st_ino, st.st_mtime_ns, st.st_size) == self._signature:
            return
        try:
            self._keys = self._load(self.file)
        except ValueError as e:
            log.warning("keeping the previous teams: %s", e)
            return
        log.info("teams reloaded from %s: %s", self.file, ", ".join(self.names()))

    def team(self, key: str) -> str | None:
        """The team of ``key``, None for an unknown key."""
        self._refresh()
        return self._keys.get(_digest(key)) if key else None

    def names(self) -> list[str]:
        return sorted(set(self._keys.values()))
