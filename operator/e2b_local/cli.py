"""`e2b-local serve`: run the local E2B-compatible runtime and print the SDK environment.

The API key comes from $E2B_LOCAL_API_KEY or --api-key-file, never from the command line
(where `ps` shows it); without either, a new key is written to <state-dir>/api-key (0600).
It is team `default`; more teams, each seeing only its own sandboxes and templates, come
from --teams-file and $E2B_LOCAL_TEAMS (`TEAM=KEY` a line, see teams.py). Keys are never
printed or logged.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import shlex
import socket
from pathlib import Path

import uvicorn

from . import hostns, limits, prom
from .faults import Faults, parse_spec
from .server import LocalE2B
from .teams import Teams

KEEP_ALIVE_S = 330


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _read_key(path: str) -> str:
    try:
        key = Path(path).read_text().strip()
    except OSError as e:
        raise ValueError(f"--api-key-file: {e.strerror}: {path}") from e
    if not key:
        raise ValueError(f"--api-key-file: {path} is empty")
    return key


def _write_key(path: Path) -> str:
    """Generate a key into ``path``, created 0600 (a previous file is replaced)."""
    key = "e2b_" + secrets.token_hex(20)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="e2b-local", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="serve the E2B control plane and envd on one port")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=0, help="0 picks a free port")
    s.add_argument("--state-dir", default="/var/lib/e2b-local")
    s.add_argument(
        "--api-key-file",
        help="file holding the API key (default: $E2B_LOCAL_API_KEY, else a new key is "
        "written to <state-dir>/api-key)",
    )
    s.add_argument("--api-key", help=argparse.SUPPRESS)
    s.add_argument(
        "--teams-file",
        help="more API keys as separate teams: TEAM=KEY a line (also $E2B_LOCAL_TEAMS); "
        "read again when it changes",
    )
    s.add_argument("--max-sandboxes", type=int, default=100)
    s.add_argument(
        "--fault",
        action="append",
        default=[],
        help="fault rule KIND[=ARG]:SHARE[:COUNT][@PATH] (see faults.py); repeatable",
    )
    s.add_argument(
        "--limits",
        default=os.environ.get("E2B_LOCAL_LIMITS", "off"),
        help="E2B's rate limits and concurrency cap per API key: a preset (off, hobby, pro) "
        "and FIELD=VALUE overrides, e.g. 'pro,concurrent_sandboxes=30' (see limits.py; "
        "default $E2B_LOCAL_LIMITS or off); changeable at run time through /admin/limits",
    )
    s.add_argument(
        "--layer-cache",
        default=os.environ.get("E2B_LOCAL_LAYER_CACHE")
        or str(Path.home() / ".cache" / "e2b-operator" / "e2b-local-layers"),
        help="host-wide cache of built-in template layers (code-interpreter), shared by servers",
    )
    s.add_argument(
        "--share-builds",
        action="store_true",
        default=os.environ.get("E2B_LOCAL_SHARE_BUILDS") == "1",
        help="keep every template's layers in the layer cache too, keyed by content like a "
        "Docker build cache (skipCache bypasses it): identical templates build once per host "
        "(tests, make dev); E2B itself builds each template of a team",
    )
    s.add_argument("--log-level", default="info")
    args = p.parse_args(argv)

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    spec = ",".join([os.environ.get("E2B_LOCAL_FAULTS", ""), *args.fault])
    try:
        faults = Faults(parse_spec(spec))
        rate_limits = limits.parse_spec(args.limits)
    except ValueError as e:
        p.error(str(e))
    if args.api_key is not None:
        s.error(
            "--api-key would show the key to every user in `ps`; "
            "set E2B_LOCAL_API_KEY or pass --api-key-file PATH"
        )
    state_dir = Path(args.state_dir).resolve()
    env_key = os.environ.pop("E2B_LOCAL_API_KEY", None)  # not inherited by anything we start
    key_file: Path | None = None
    if args.api_key_file:
        try:
            api_key = _read_key(args.api_key_file)
        except ValueError as e:
            s.error(str(e))
        key_file = Path(args.api_key_file).resolve()
    elif env_key:
        api_key = env_key
    else:
        key_file = state_dir / "api-key"
        api_key = _write_key(key_file)
    env_teams = os.environ.pop("E2B_LOCAL_TEAMS", "")
    teams_file = Path(args.teams_file).resolve() if args.teams_file else None
    try:
        teams = Teams(api_key, env_teams, teams_file)
    except ValueError as e:
        s.error(str(e))
    port = args.port or _free_port(args.host)
    hostns.enter_private_mount_namespace()
    app = LocalE2B(
        state_dir,
        teams,
        args.max_sandboxes,
        faults,
        Path(args.layer_cache),
        limits=rate_limits,
        share_builds=args.share_builds,
    )
    served = prom.Instrumented(app, app.route_label, app.sandbox_states)
    url = f"http://{args.host}:{port}"
    print(f"export E2B_API_URL={url}", flush=True)
    print(f"export E2B_SANDBOX_URL={url}", flush=True)
    if key_file is not None:
        print(f'export E2B_API_KEY="$(cat {shlex.quote(str(key_file))})"', flush=True)
    else:
        print("# E2B_API_KEY: the value of E2B_LOCAL_API_KEY", flush=True)
    print(f"# teams: {', '.join(teams.names())}", flush=True)
    uvicorn.run(
        served,
        host=args.host,
        port=port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=5,
        # The SDKs reuse idle connections for up to 300 s (E2B_KEEPALIVE_EXPIRY); a server
        # that closed them sooner (uvicorn's default is 5 s) races their next request and
        # drops it (httpx.RemoteProtocolError). Close later than any client does.
        timeout_keep_alive=KEEP_ALIVE_S,
    )


if __name__ == "__main__":
    main()
