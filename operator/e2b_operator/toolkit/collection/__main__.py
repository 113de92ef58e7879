"""CLI: python -m e2b_operator.toolkit.collection OUTDIR writes the collection's manifests."""

import sys
from pathlib import Path

from .render import write


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m e2b_operator.toolkit.collection OUTDIR", file=sys.stderr)
        return 2
    for path in write(Path(args[0])):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
