"""The built-in `code-interpreter` template (alias `code-interpreter-v1`), as E2B ships it.

A venv with ipykernel, jupyter_client and matplotlib from PyPI (pinned: they key the cached
layer) and `code_interpreter_server.py` on port 49999, the port `e2b_code_interpreter` talks
to. Built on first use; the layer is also kept in a cache shared by every e2b-local server on
the host (`--layer-cache`), so later servers restore it instead of reinstalling.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

NAMES = ["code-interpreter", "code-interpreter-v1"]
PACKAGES = ("ipykernel==7.4.0", "jupyter-client==8.10.0", "matplotlib==3.11.2")
VENV = "/opt/e2b-code-interpreter"
PROFILE = "/etc/profile.d/e2b-code-interpreter.sh"
SERVER = Path(__file__).with_name("code_interpreter_server.py")


def build_spec() -> dict[str, Any]:
    """The template build, in the SDK's wire format (the server's source is part of it)."""
    source = base64.b64encode(SERVER.read_bytes()).decode()
    install = f"python3 -m venv {VENV} && {VENV}/bin/pip install -q --no-cache-dir " + " ".join(
        PACKAGES
    )
    return {
        "fromImage": "e2bdev/code-interpreter",
        "steps": [
            {"type": "RUN", "args": [install, "root"]},
            {"type": "RUN", "args": [f"echo {source} | base64 -d > {VENV}/server.py", "root"]},
            # `python` and `pip` in commands are the kernel's, as in E2B's template (commands
            # run in a login shell, whose /etc/profile resets PATH before profile.d).
            {"type": "RUN", "args": [f"echo 'PATH={VENV}/bin:$PATH' > {PROFILE}", "root"]},
            {"type": "WORKDIR", "args": ["/home/user"]},
        ],
        "startCmd": f"{VENV}/bin/python {VENV}/server.py",
        "readyCmd": "ss -Htln | grep -q ':49999 '",
    }
