"""Where a template's files live inside its sandbox, and how its main script is run.

The one place that says it: the builder's default health check, the collection and (later)
the operator's build steps and the deployer's executions all use these.
"""

from pathlib import PurePosixPath

APP_DIR = PurePosixPath("/app")
"""Root of a template's files in the sandbox."""

SECTION_DIRS = {
    "modules": APP_DIR,
    "configs": APP_DIR / "config",
    "data": APP_DIR / "data",
    "scripts": APP_DIR / "scripts",
}
"""Directory of each `spec.files` map; its keys are paths relative to it."""


def is_node(runtime: str) -> bool:
    return str(runtime).startswith("node")


def main_script_path(runtime: str) -> PurePosixPath:
    """/app/main.js for node runtimes, /app/main.py otherwise."""
    return APP_DIR / ("main.js" if is_node(runtime) else "main.py")


def main_command(runtime: str) -> list[str]:
    """argv that runs the main script; the execution's JSON config is appended as argv[1]."""
    return ["node" if is_node(runtime) else "python3", str(main_script_path(runtime))]


def health_check(runtime: str) -> str:
    """A cheap check that passes offline: the main script is there and the interpreter runs."""
    probe = "node -e 'JSON.parse(\"{}\")'" if is_node(runtime) else "python3 -c 'import json'"
    return f"test -f {main_script_path(runtime)} && {probe}"


def sandbox_path(section: str, relative: str) -> PurePosixPath:
    """Absolute sandbox path of a file in one of the `spec.files` maps."""
    return SECTION_DIRS[section] / relative
