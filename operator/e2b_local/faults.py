"""Fault injection for control-plane calls (429, 503, timeouts, delays).

Spec string (CLI `--fault`, env E2B_LOCAL_FAULTS, comma-separated rules):
  KIND[=ARG]:SHARE[:COUNT][@PATH_PREFIX]
KIND is 429, 503, timeout (hang ARG seconds, default 3600) or delay (sleep ARG seconds, then
answer normally). SHARE is the probability in [0, 1]; COUNT caps how many calls the rule
hits; PATH_PREFIX limits it to matching paths. Example: `429:1:2@/v2/sandboxes,delay=0.3:0.5`.
At run time: GET/POST/DELETE /admin/faults; POST takes a JSON object with a "spec" string or
a "rules" list of objects (FaultRule fields), and an optional integer "seed".
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import asdict, dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .admin import bad_request, json_object

KINDS = ("429", "503", "timeout", "delay")


@dataclass
class FaultRule:
    kind: str
    share: float = 1.0
    arg: float | None = None
    count: int | None = None
    path: str = "/"
    hits: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r} (one of {', '.join(KINDS)})")
        if not _number(self.share) or not 0.0 <= self.share <= 1.0:
            raise ValueError("fault share must be a number within [0, 1]")
        if self.arg is not None and (not _number(self.arg) or self.arg < 0):
            raise ValueError("fault arg must be a non-negative number")
        if self.count is not None and (not _integer(self.count) or self.count < 0):
            raise ValueError("fault count must be a non-negative integer")
        if not isinstance(self.path, str) or not self.path.startswith("/"):
            raise ValueError("fault path must be a string starting with '/'")
        if not _integer(self.hits):
            raise ValueError("fault hits must be an integer")


def _number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _integer(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def parse_spec(spec: str) -> list[FaultRule]:
    rules = []
    for rule in filter(None, (p.strip() for p in spec.split(","))):
        part, _, path = rule.partition("@")
        fields = part.split(":")
        kind, _, arg = fields[0].partition("=")
        try:
            if len(fields) > 3:
                raise ValueError("too many ':' fields")
            rules.append(
                FaultRule(
                    kind=kind,
                    arg=float(arg) if arg else None,
                    share=float(fields[1]) if len(fields) > 1 else 1.0,
                    count=int(fields[2]) if len(fields) > 2 else None,
                    path=path or "/",
                )
            )
        except ValueError as e:
            raise ValueError(f"bad fault rule {rule!r}: {e}") from e
    return rules


def parse_body(raw: bytes) -> tuple[list[FaultRule], int | None]:
    """Rules and optional seed from a POST /admin/faults body; ValueError says what is wrong."""
    body = json_object(raw, '{"spec": "..."} or {"rules": [...]}')
    seed = body.get("seed")
    if seed is not None and not _integer(seed):
        raise ValueError("seed must be an integer")
    if ("spec" in body) == ("rules" in body):
        raise ValueError('the body needs exactly one of "spec" (a string) or "rules" (a list)')
    if "spec" in body:
        if not isinstance(body["spec"], str):
            raise ValueError('"spec" must be a string such as "429:0.5@/v2/sandboxes"')
        return parse_spec(body["spec"]), seed
    rules = body["rules"]
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise ValueError('"rules" must be a list of objects')
    try:
        return [FaultRule(**r) for r in rules], seed
    except TypeError as e:
        raise ValueError(f"bad fault rule: {e}") from e


class Faults:
    """The active rules; `intercept` returns a response to send instead, or None."""

    def __init__(self, rules: list[FaultRule] | None = None, seed: int | None = None) -> None:
        self.rules = rules or []
        self.rng = random.Random(seed)

    def pick(self, path: str) -> FaultRule | None:
        for rule in self.rules:
            if not path.startswith(rule.path):
                continue
            if rule.count is not None and rule.hits >= rule.count:
                continue
            if self.rng.random() < rule.share:
                rule.hits += 1
                return rule
        return None

    async def intercept(self, path: str) -> Response | None:
        rule = self.pick(path)
        if rule is None:
            return None
        if rule.kind == "delay":
            await asyncio.sleep(rule.arg if rule.arg is not None else 1.0)
            return None
        if rule.kind == "timeout":
            await asyncio.sleep(rule.arg if rule.arg is not None else 3600.0)
            return JSONResponse({"code": 504, "message": "injected timeout"}, status_code=504)
        code = int(rule.kind)
        headers = {"Retry-After": str(int(rule.arg or 0))} if code == 429 else {}
        msg = "injected fault: rate limited" if code == 429 else "injected fault: service busy"
        return JSONResponse({"code": code, "message": msg}, status_code=code, headers=headers)

    async def admin(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.rules = []
        elif request.method == "POST":
            try:
                rules, seed = parse_body(await request.body())
            except ValueError as e:
                return bad_request(e)
            self.rules = rules
            if seed is not None:
                self.rng = random.Random(seed)
        return JSONResponse({"rules": [asdict(r) for r in self.rules]})
