"""Async SDK and template builds (copy, pip_install, start/ready) against e2b-local."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from e2b import AsyncSandbox, AsyncTemplate, Template
from e2b.exceptions import BuildException

from .conftest import LocalServer


async def test_async_sandbox_calls(local: LocalServer) -> None:
    s = await AsyncSandbox.create(metadata={"suite": "async"}, **local.kw)
    try:
        out: list[str] = []
        r = await s.commands.run("for i in 1 2 3; do echo $i; done", on_stdout=out.append)
        assert r.stdout == "1\n2\n3\n" and "".join(out) == r.stdout
        await s.files.write("/tmp/x.txt", b"bytes!")
        assert await s.files.read("/tmp/x.txt", format="bytes") == b"bytes!"
        assert [e.name for e in await s.files.list("/tmp")] == ["x.txt"]
        assert await s.is_running()
        info = await s.get_info()
        assert info.metadata == {"suite": "async"}
        pager = AsyncSandbox.list(**local.kw)
        ids = [i.sandbox_id for i in await pager.next_items()]
        assert s.sandbox_id in ids
        await s.set_timeout(60)
        assert await s.pause()
        assert not await s.is_running()
        await s.connect()
        assert (await s.commands.run("echo resumed")).stdout == "resumed\n"
    finally:
        assert await s.kill()


async def test_async_concurrent_creates(local: LocalServer) -> None:
    sbxs = await asyncio.gather(*(AsyncSandbox.create(**local.kw) for _ in range(6)))
    try:
        outs = await asyncio.gather(*(s.commands.run("hostname") for s in sbxs))
        assert len({o.stdout for o in outs}) == 6
    finally:
        await asyncio.gather(*(s.kill() for s in sbxs))


@pytest.fixture(scope="module")
def built_template(local: LocalServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    ctx = tmp_path_factory.mktemp("ctx")
    (ctx / "app").mkdir()
    (ctx / "app" / "main.py").write_text("import humanize\nprint(humanize.intcomma(1234567))\n")
    (ctx / "app" / "data.txt").write_text("copied data\n")
    t = (
        Template(file_context_path=str(ctx))
        .from_python_image("3.11")
        .copy("app", "/srv/app/")
        .pip_install("humanize")
        .set_envs({"APP_MODE": "test"})
        .set_workdir("/srv/app")
        .set_start_cmd(
            "python3 -m http.server 8123 --bind 127.0.0.1",
            "curl -sf http://127.0.0.1:8123/ > /dev/null",
        )
    )
    logs: list[str] = []
    info = Template.build(
        t,
        "py-app",
        cpu_count=1,
        memory_mb=512,
        on_build_logs=lambda e: logs.append(e.message),
        **local.kw,
    )
    assert info.name == "py-app"
    assert any("humanize" in line for line in logs)
    return "py-app"


async def test_template_used_by_several_sandboxes(local: LocalServer, built_template: str) -> None:
    sbxs = await asyncio.gather(
        *(
            AsyncSandbox.create(built_template, allow_internet_access=False, **local.kw)
            for _ in range(3)
        )
    )
    try:
        for s in sbxs:
            r = await s.commands.run(
                "python3 main.py; cat data.txt; pwd; echo $APP_MODE; "
                "curl -s http://127.0.0.1:8123/ | grep -c main.py"
            )
            assert r.stdout == "1,234,567\ncopied data\n/srv/app\ntest\n1\n"
            info = await s.get_info()
            assert (info.cpu_count, info.memory_mb) == (1, 512)
        # each sandbox has its own writable layer
        await sbxs[0].commands.run("echo changed > /srv/app/data.txt")
        assert (await sbxs[1].commands.run("cat /srv/app/data.txt")).stdout == "copied data\n"
    finally:
        await asyncio.gather(*(s.kill() for s in sbxs))


async def test_async_template_cache_alias_list_delete(
    local: LocalServer, built_template: str
) -> None:
    t = AsyncTemplate().from_template(built_template).run_cmd("echo layer2 > /srv/app/l2.txt")
    info = await AsyncTemplate.build(t, "child-tpl", **local.kw)
    again = await AsyncTemplate.build(t, "child-tpl", **local.kw)
    assert again.template_id == info.template_id
    assert await AsyncTemplate.exists("child-tpl", **local.kw)
    assert not await AsyncTemplate.exists("no-such-template", **local.kw)
    s = await AsyncSandbox.create("child-tpl", **local.kw)
    try:
        r = await s.commands.run("cat /srv/app/l2.txt /srv/app/data.txt")
        assert r.stdout == "layer2\ncopied data\n"
    finally:
        await s.kill()
    import httpx

    h = {"X-API-Key": local.api_key}
    async with httpx.AsyncClient(base_url=local.url, headers=h) as c:
        listed = (await c.get("/v2/templates")).json()
        assert {"py-app", "child-tpl"} <= {n for t in listed for n in t["names"]}
        assert (await c.delete(f"/templates/{info.template_id}")).status_code == 204
        assert (await c.get("/templates/aliases/child-tpl")).status_code == 404


async def test_failing_build_step_raises_with_log(local: LocalServer) -> None:
    t = (
        AsyncTemplate()
        .from_debian_image()
        .run_cmd("echo step-one-ok")
        .run_cmd("echo distinctive-failure-output >&2; exit 3")
    )
    with pytest.raises(BuildException) as ei:
        await AsyncTemplate.build(t, "broken-tpl", **local.kw)
    assert "distinctive-failure-output" in str(ei.value)
    assert "exit" in str(ei.value) and "3" in str(ei.value)


async def test_unsupported_base_image_is_refused(local: LocalServer) -> None:
    with pytest.raises(BuildException, match="not emulated"):
        await AsyncTemplate.build(AsyncTemplate().from_alpine_image(), "alp", **local.kw)


def test_template_layer_persists_across_restart(tmp_path: Path) -> None:
    from .conftest import leftovers, start_server, stop_server

    server = start_server(tmp_path / "state")
    try:
        Template.build(
            Template().from_debian_image().run_cmd("echo kept > /opt/kept.txt", user="root"),
            "keep-me",
            **server.kw,
        )
    finally:
        stop_server(server)
    assert not leftovers(server)
    server = start_server(tmp_path / "state")
    try:
        from e2b import Sandbox

        s = Sandbox.create("keep-me", **server.kw)
        assert s.commands.run("cat /opt/kept.txt").stdout == "kept\n"
        s.kill()
    finally:
        stop_server(server)
    assert not leftovers(server)
