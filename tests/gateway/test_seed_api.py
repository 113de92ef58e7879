"""The seed's REST API examples and Integration Examples, as written, against the real stack:
apiserver, operator, e2b-local and the gateway process."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from e2b import Sandbox
from fastapi import BackgroundTasks, FastAPI
from fastapi.responses import StreamingResponse

from e2b_operator import localstack
from e2b_operator.controlplane.cluster import LocalCluster
from e2b_operator.gateway import template_router
from e2b_operator.toolkit import TemplateDeployer
from support import get, wait_for

from .gateway_support import SEED_EXECUTE, SEED_LIST, SEED_SEARCH, Users, curl

pytestmark = pytest.mark.cluster


def test_list_and_search(
    gateway: localstack.Gateway, alice_headers: Path, python_base: str, alice: httpx.Client
) -> None:
    code, body = curl(gateway, alice_headers, SEED_LIST)
    assert code == 200, body
    listed = {t["name"]: t for t in body["templates"]}
    assert listed["python-base"]["phase"] == "Ready" and body["count"] == len(listed)
    assert listed["python-base"]["type"] == "pythonBase"
    code, body = curl(gateway, alice_headers, SEED_SEARCH)
    assert code == 200 and "momo" not in [t["name"] for t in body["templates"]], body
    made = alice.post(
        "/e2b/templates/builder/trading", json={"name": "Momo", "strategy_type": "rsi"}
    )
    assert made.status_code == 201, made.text
    code, body = curl(gateway, alice_headers, SEED_SEARCH)
    assert "momo" in [t["name"] for t in body["templates"]], body
    assert all("trading" in t["tags"] for t in body["templates"]), body


def test_deploy_and_execute(
    kube: LocalCluster,
    e2b: localstack.E2BLocal,
    gateway: localstack.Gateway,
    alice_headers: Path,
    seed_deployment: tuple[int, dict],
    users: Users,
) -> None:
    code, body = seed_deployment
    assert code == 201, body
    assert body["template"] == "python-base" and body["status"] == "Available"
    sandbox_id = body["sandbox_id"]
    obj = get(kube, users.namespace, "e2bd", body["deployment"])
    assert obj["spec"]["env"] == [{"name": "DEBUG", "value": "true"}]
    assert "env_vars" not in obj["spec"].get("config", {})
    sandbox = Sandbox.connect(sandbox_id, api_key=e2b.api_key, api_url=e2b.url, sandbox_url=e2b.url)
    assert sandbox.commands.run("echo $DEBUG").stdout.strip() == "true"
    # verbatim: sandbox_123 does not exist
    code, body = curl(gateway, alice_headers, SEED_EXECUTE)
    assert code == 404 and body["code"] == "NotFound", body
    assert "sandbox_123" in body["message"] and users.namespace in body["message"]
    code, body = curl(gateway, alice_headers, SEED_EXECUTE.replace("sandbox_123", sandbox_id))
    assert code == 200, body
    assert body["status"] == "success" and body["exit_code"] == 0, body
    assert body["sandbox_id"] == sandbox_id and isinstance(body["result"], dict)
    execution = get(kube, users.namespace, "e2bx", body["execution"])
    assert execution["spec"]["input"] == {"symbol": "AAPL", "period": "1mo"}
    assert execution["spec"]["ttlSecondsAfterFinished"] == TemplateDeployer().execution_ttl


# -- Integration Examples: user applications, served by uvicorn like any FastAPI app ----------


@pytest.fixture
def serve() -> Iterator:
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: FastAPI) -> str:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        wait_for(lambda: server.started, 30, "the example app to start")
        servers.append((server, thread))
        port = server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(30)


def test_with_fastapi_application(serve, users: Users, python_base: str) -> None:
    app = FastAPI()
    app.include_router(template_router)

    # Now templates are available at /e2b/templates/*
    url = serve(app)
    auth = {"Authorization": f"Bearer {users.alice}"}
    listed = httpx.get(
        f"{url}/e2b/templates/registry/list?namespace={users.namespace}", headers=auth
    )
    assert listed.status_code == 200, listed.text
    assert "python-base" in [t["name"] for t in listed.json()["templates"]]
    assert httpx.get(f"{url}/e2b/templates/registry/list").status_code == 401
    paths = httpx.get(f"{url}/openapi.json").json()["paths"]
    assert "/e2b/templates/deploy/{id}/execute" in paths


def test_with_background_tasks(serve, kube: LocalCluster, users: Users, python_base: str) -> None:
    deployer = TemplateDeployer(namespace=users.namespace)
    app = FastAPI()

    async def deploy_and_run(template_id: str, config: dict):
        deployment = await deployer.deploy_template(template_id, config)
        result = await deployer.execute_template(
            deployment["sandbox_id"],
            input_data=config
        )  # fmt: skip
        return result

    @app.post("/run-template")
    async def run_template(template_id: str, config: dict, background_tasks: BackgroundTasks):
        background_tasks.add_task(deploy_and_run, template_id, config)
        return {"status": "started"}

    url = serve(app)
    answer = httpx.post(
        f"{url}/run-template?template_id=python_base", json={"message": "from the background"}
    )
    assert answer.json() == {"status": "started"}

    def finished() -> dict | None:
        out = kube.kubectl("-n", users.namespace, "get", "e2bx", "-o", "json").stdout
        for x in json.loads(out)["items"]:
            if x["spec"]["input"] == {"message": "from the background"}:
                return x if x.get("status", {}).get("phase") == "Succeeded" else None
        return None

    execution = wait_for(finished, 180, "the background execution to succeed")
    assert execution["status"]["result"]["reply"] == "Received: from the background"
    asyncio.run(deployer.cleanup(execution["spec"]["deploymentRef"]["name"]))


def test_with_streaming_results(serve, users: Users, python_base: str) -> None:
    deployer = TemplateDeployer(namespace=users.namespace)
    app = FastAPI()

    async def stream_template_results(template_id: str, config: dict):
        deployment = await deployer.deploy_template(template_id, config)
        sandbox_id = deployment["sandbox_id"]

        while True:
            result = await deployer.execute_template(sandbox_id, input_data=config)
            yield f"data: {json.dumps(result)}\\n\\n"
            await asyncio.sleep(1)

    @app.get("/stream-template")
    async def stream_template(template_id: str):
        return StreamingResponse(
            stream_template_results(template_id, {}),
            media_type="text/plain"
        )  # fmt: skip

    url = serve(app)
    records: list[dict] = []
    started = time.monotonic()
    with httpx.stream("GET", f"{url}/stream-template?template_id=python_base", timeout=300) as r:
        assert r.status_code == 200
        text = ""
        for chunk in r.iter_text():
            text += chunk
            parts = text.split("data: ")[1:]
            complete = [p for p in parts if p.endswith("\\n\\n")]
            if len(complete) >= 2:
                records = [json.loads(p.removesuffix("\\n\\n")) for p in complete]
                break
            assert time.monotonic() - started < 240, "two results did not arrive"
    assert all(rec["status"] == "success" for rec in records), records
    assert records[0]["sandbox_id"] == records[1]["sandbox_id"]
    assert records[0]["execution"] != records[1]["execution"]
    deployment = asyncio.run(deployer.deployment_status(records[0]["sandbox_id"]))
    asyncio.run(deployer.cleanup(deployment["deployment"]))
