"""`e2b-local serve`: run the local E2B-compatible runtime and print the SDK environment."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import socket
import sys
from pathlib import Path

import uvicorn

from .faults import Faults, parse_spec
from .server import LocalE2B


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="e2b-local", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="serve the E2B control plane and envd on one port")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=0, help="0 picks a free port")
    s.add_argument("--state-dir", default="/var/lib/e2b-local")
    s.add_argument("--api-key", default=os.environ.get("E2B_LOCAL_API_KEY"))
    s.add_argument("--max-sandboxes", type=int, default=100)
    s.add_argument(
        "--fault",
        action="append",
        default=[],
        help="fault rule KIND[=ARG]:SHARE[:COUNT][@PATH] (see faults.py); repeatable",
    )
    s.add_argument("--log-level", default="info")
    args = p.parse_args(argv)

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    spec = ",".join([os.environ.get("E2B_LOCAL_FAULTS", ""), *args.fault])
    try:
        faults = Faults(parse_spec(spec))
    except ValueError as e:
        p.error(str(e))
    api_key = args.api_key or "e2b_" + secrets.token_hex(20)
    port = args.port or _free_port(args.host)
    app = LocalE2B(Path(args.state_dir).resolve(), api_key, args.max_sandboxes, faults)
    url = f"http://{args.host}:{port}"
    print(f"export E2B_API_URL={url}", flush=True)
    print(f"export E2B_SANDBOX_URL={url}", flush=True)
    print(f"export E2B_API_KEY={api_key}", flush=True)
    sys.stdout.flush()
    uvicorn.run(
        app,
        host=args.host,
        port=port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
