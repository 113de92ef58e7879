"""Where an E2BTemplate's files live inside a sandbox: part of the API contract."""

from __future__ import annotations

import shlex

APP_DIR = "/app"
"""Working directory of every sandbox; files.modules are written here, next to the main script."""
FILE_DIRS = {
    "modules": APP_DIR,
    "configs": f"{APP_DIR}/configs",
    "data": f"{APP_DIR}/data",
    "scripts": f"{APP_DIR}/scripts",
}
"""Directory of each files.* map; map keys are paths relative to it."""
INSTANCE_CONFIG = f"{APP_DIR}/instance.json"
"""The instance's JSON configuration, written by the operator after create."""
MAIN_LOG = f"{APP_DIR}/main.log"
"""stdout and stderr of the main script started in each deployment sandbox."""


def main_script_path(runtime: str) -> str:
    """Path of files.mainScript: main.js for node runtimes, main.py otherwise."""
    return f"{APP_DIR}/main.js" if runtime.startswith("node") else f"{APP_DIR}/main.py"


def interpreter(runtime: str) -> str:
    return "node" if runtime.startswith("node") else "python3"


def main_command(runtime: str, config_json: str | None = None) -> str:
    """Shell command running the main script with a JSON config as argv[1] (the seed's way)."""
    cmd = f"{interpreter(runtime)} {main_script_path(runtime)}"
    return f"{cmd} {shlex.quote(config_json)}" if config_json is not None else cmd


def file_paths(files: dict[str, dict[str, str]]) -> dict[str, str]:
    """Absolute sandbox path -> content for every files.* map (not the main script)."""
    out: dict[str, str] = {}
    for group, directory in FILE_DIRS.items():
        for rel, content in (files.get(group) or {}).items():
            out[f"{directory}/{rel.lstrip('/')}"] = content
    return out
