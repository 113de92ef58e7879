"""The unmodified `e2b_code_interpreter` SDK against e2b-local's built-in code-interpreter template.

The first use builds the template from PyPI (minutes); the layer is then kept in the host's
shared layer cache (~/.cache/e2b-operator/e2b-local-layers), so later runs restore it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from e2b_code_interpreter import Sandbox

from .conftest import LocalServer

FIRST_BUILD_S = 900  # a cold build installs ipykernel and matplotlib from PyPI


@pytest.fixture(scope="module")
def ci(local: LocalServer) -> Iterator[Sandbox]:
    sbx = Sandbox.create(request_timeout=FIRST_BUILD_S, **local.kw)
    yield sbx
    sbx.kill()


def test_run_code_results_logs_and_state(ci: Sandbox) -> None:
    ex = ci.run_code("1+1")
    assert ex.text == "2" and ex.error is None
    ex = ci.run_code("import sys\nx = 40\nprint('out'); print('err', file=sys.stderr)\nx + 2")
    assert ex.logs.stdout == ["out\n"] and ex.logs.stderr == ["err\n"]
    assert ex.text == "42"
    assert ci.run_code("x").text == "40"  # one kernel: state persists between calls


def test_errors_arrive_as_execution_errors(ci: Sandbox) -> None:
    ex = ci.run_code("1/0")
    assert ex.error is not None and ex.error.name == "ZeroDivisionError"
    assert "division by zero" in ex.error.value and "1/0" in ex.error.traceback
    assert ex.text is None


def test_matplotlib_plot_is_a_png(ci: Sandbox) -> None:
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.show()"
    ex = ci.run_code(code)
    assert ex.error is None, ex.error
    pngs = [r.png for r in ex.results if r.png]
    assert len(pngs) == 1
    assert base64.b64decode(pngs[0]).startswith(b"\x89PNG\r\n\x1a\n")


def test_env_vars_contexts_and_streaming_callbacks(ci: Sandbox) -> None:
    seen: list[str] = []
    ex = ci.run_code(
        "import os; print(os.environ.get('PER_RUN'))",
        envs={"PER_RUN": "yes"},
        on_stdout=lambda m: seen.append(m.line),
    )
    assert ex.logs.stdout == ["yes\n"] and seen == ["yes\n"]
    assert ci.run_code("import os; os.environ.get('PER_RUN')").text is None
    ctx = ci.create_code_context(cwd="/tmp")
    assert ci.run_code("import os; os.getcwd()", context=ctx).text == "'/tmp'"
    assert ci.run_code("x", context=ctx).error is not None  # a separate kernel
    assert ctx.id in [c.id for c in ci.list_code_contexts()]
    ci.remove_code_context(ctx)
    assert ctx.id not in [c.id for c in ci.list_code_contexts()]
    with pytest.raises(Exception, match="not supported"):
        ci.run_code("console.log(1)", language="js")


def test_alias_and_commands_share_the_kernels_python(local: LocalServer, ci: Sandbox) -> None:
    assert ci.commands.run("python -c 'import matplotlib; print(1)'").stdout == "1\n"
    other = Sandbox.create("code-interpreter", **local.kw)
    try:
        assert other.run_code("2*21").text == "42"
    finally:
        other.kill()
