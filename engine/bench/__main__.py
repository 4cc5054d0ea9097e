"""``python -m engine.bench MODE [args]``: dispatch to the mode's module (imported only when chosen)."""

from __future__ import annotations

import importlib
import sys
from typing import Optional

MODES = {
    "data": "engine.bench.data",
    "train": "engine.bench.train",
    "infer": "engine.bench.infer",
    "report": "engine.bench.report",
}


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in MODES:
        print(f"usage: python -m engine.bench {{{','.join(MODES)}}} [args]  (-h after a mode for its help)")
        return 2
    return importlib.import_module(MODES[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
