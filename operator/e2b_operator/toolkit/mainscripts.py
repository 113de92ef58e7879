"""The collection's main scripts as text, read from the package files beside the collection.

Read by path, not through the `collection` package, so the builder's presets can use them
without importing the collection (which imports the builder).
"""

from pathlib import Path

DIRECTORY = Path(__file__).parent / "collection"
SHARED_MODULE = "agent_io.py"
"""The helper module every Python main script imports (config in, JSON out, Claude call)."""


def script(filename: str) -> str:
    """The text of a script shipped with the collection."""
    return (DIRECTORY / filename).read_text()


def main_files(filename: str) -> tuple[str, dict[str, str]]:
    """(main script, modules it needs) of a collection script."""
    modules = {SHARED_MODULE: script(SHARED_MODULE)} if filename.endswith(".py") else {}
    return script(filename), modules
