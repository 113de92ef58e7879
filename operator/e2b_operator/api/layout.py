"""Where an E2BTemplate's files live inside a sandbox and how its main script runs.

Part of the API contract: the operator's build steps, the deployer's executions and the
builder's default health check all read it from here.
"""

from __future__ import annotations

import shlex
from pathlib import PurePosixPath

APP_DIR = PurePosixPath("/app")
"""Working directory of every sandbox; the main script and files.modules live here."""

SECTION_DIRS = {
    "modules": APP_DIR,
    "configs": APP_DIR / "config",
    "data": APP_DIR / "data",
    "scripts": APP_DIR / "scripts",
}
"""Directory of each `spec.files` map; its keys are paths relative to it."""

INSTANCE_CONFIG = APP_DIR / "instance.json"
"""The instance's JSON configuration, written by the operator after create."""
TEMPLATE_CONFIG = APP_DIR / "template.json"
"""The whole template configuration (metadata, requirements, hooks, agent configs, custom
config; not the files), in the seed's TemplateConfig shape, baked in at build."""
CONFIG_ENV = {
    "E2B_TEMPLATE_CONFIG": str(TEMPLATE_CONFIG),
    "E2B_INSTANCE_CONFIG": str(INSTANCE_CONFIG),
}
"""Environment variables naming both files, set in every sandbox."""
MAIN_LOG = APP_DIR / "main.log"
"""stdout and stderr of the main script started in each deployment sandbox."""
MAIN_EXIT = APP_DIR / "main.exit"
"""The exit code of that main script, written when it exits (read at each health check)."""


def is_node(runtime: str) -> bool:
    return str(runtime).startswith("node")


def main_script_path(runtime: str) -> PurePosixPath:
    """/app/main.js for node runtimes, /app/main.py otherwise."""
    return APP_DIR / ("main.js" if is_node(runtime) else "main.py")


def main_command(runtime: str) -> list[str]:
    """argv that runs the main script; the JSON config is appended as argv[1] (the seed's way)."""
    return ["node" if is_node(runtime) else "python3", str(main_script_path(runtime))]


def main_shell(runtime: str, config_json: str) -> str:
    """main_command with the config, as one shell command line."""
    return shlex.join([*main_command(runtime), config_json])


def main_service(runtime: str, config_json: str) -> str:
    """main_shell for a deployment sandbox: its exit code is recorded in MAIN_EXIT."""
    return f"rm -f {MAIN_EXIT}; {main_shell(runtime, config_json)}; echo $? > {MAIN_EXIT}"


def health_check(runtime: str) -> str:
    """A cheap check that passes offline: the main script is there and the interpreter runs."""
    probe = "node -e 'JSON.parse(\"{}\")'" if is_node(runtime) else "python3 -c 'import json'"
    return f"test -f {main_script_path(runtime)} && {probe}"


def sandbox_path(section: str, relative: str) -> PurePosixPath:
    """Absolute sandbox path of a file in one of the `spec.files` maps."""
    return SECTION_DIRS[section] / relative


def file_paths(files: dict[str, dict[str, str] | None]) -> dict[str, str]:
    """Absolute sandbox path -> content for every files.* map (not the main script)."""
    return {
        str(sandbox_path(section, rel)): content
        for section in SECTION_DIRS
        for rel, content in (files.get(section) or {}).items()
    }
