"""Fault injection for control-plane calls (429, 503, timeouts, delays).

Spec string (CLI `--fault`, env E2B_LOCAL_FAULTS, comma-separated rules):
  KIND[=ARG]:SHARE[:COUNT][@PATH_PREFIX]
KIND is 429, 503, timeout (hang ARG seconds, default 3600) or delay (sleep ARG seconds, then
answer normally). SHARE is the probability in [0, 1]; COUNT caps how many calls the rule
hits; PATH_PREFIX limits it to matching paths. Example: `429:1:2@/v2/sandboxes,delay=0.3:0.5`.
At run time: GET/POST/DELETE /admin/faults (JSON {"rules": [...]} or {"spec": "..."}).
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import asdict, dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

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
        if not 0.0 <= self.share <= 1.0:
            raise ValueError("fault share must be within [0, 1]")


def parse_spec(spec: str) -> list[FaultRule]:
    rules = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        part, _, path = part.partition("@")
        fields = part.split(":")
        kind, _, arg = fields[0].partition("=")
        rules.append(
            FaultRule(
                kind=kind,
                arg=float(arg) if arg else None,
                share=float(fields[1]) if len(fields) > 1 else 1.0,
                count=int(fields[2]) if len(fields) > 2 else None,
                path=path or "/",
            )
        )
    return rules


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
                body = json.loads(await request.body() or b"{}")
                if "spec" in body:
                    self.rules = parse_spec(body["spec"])
                else:
                    self.rules = [FaultRule(**r) for r in body.get("rules", [])]
                if "seed" in body:
                    self.rng = random.Random(body["seed"])
            except (ValueError, TypeError) as e:
                return JSONResponse({"code": 400, "message": str(e)}, status_code=400)
        return JSONResponse({"rules": [asdict(r) for r in self.rules]})
