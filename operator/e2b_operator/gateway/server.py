"""`e2b-operator-gateway`: the REST API as a uvicorn server, with /healthz and OpenAPI docs."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from .metrics import instrument
from .router import template_router
from .session import close_gateway, current_gateway


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await current_gateway()  # a bad kubeconfig fails the start, not the first request
    yield
    await close_gateway()


def create_app() -> FastAPI:
    """The gateway application: template_router, /healthz, /metrics, /docs and /openapi.json."""
    app = FastAPI(
        title="e2b-operator gateway",
        summary="The E2B template system's REST API on Kubernetes",
        description="Send a Kubernetes bearer token (`Authorization: Bearer ...`); every call "
        "is authorized for it and acts through the Kubernetes API. `?namespace=` picks the "
        "namespace.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.include_router(template_router)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness and readiness: the process serves requests."""
        return {"status": "ok"}

    instrument(app)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="e2b-operator-gateway", description=__doc__)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--namespace", help="default namespace (env E2B_GATEWAY_NAMESPACE)")
    parser.add_argument("--kubeconfig", help="gateway credentials (default: in-cluster)")
    args = parser.parse_args(argv)
    if args.namespace:
        os.environ["E2B_GATEWAY_NAMESPACE"] = args.namespace
    if args.kubeconfig:
        os.environ["E2B_GATEWAY_KUBECONFIG"] = args.kubeconfig
    uvicorn.run(create_app(), host=args.host, port=args.port, proxy_headers=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
