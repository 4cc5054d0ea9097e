"""``python -m engine.bench MODE [args]``: dispatch to the mode's module (imported only when chosen)."""

from __future__ import annotations

import importlib
import sys
from typing import Optional

from engine.console import plain_warnings

MODES = {
    "data": ("engine.bench.data", "input-pipeline images/s, the port's PIL path beside ours"),
    "handover": ("engine.bench.handover", "1-worker loader passes with and without the shared-storage pool"),
    "train": ("engine.bench.train", "training images/s per card, data time against compute time"),
    "infer": (
        "engine.bench.infer",
        "inference img/s and latency percentiles; --model FILE.onnx in ONNX Runtime",
    ),
    "report": ("engine.bench.report", "every benchmark on this machine, as one report"),
}


def usage() -> str:
    lines = [
        f"usage: python -m engine.bench {{{','.join(MODES)}}} [args]  (-h after a mode for its help)",
        "",
    ]
    lines += [f"  {mode:<7} {text}" for mode, (_, text) in MODES.items()]
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    plain_warnings()
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if not argv or argv[0] not in MODES:
        print(usage())
        return 2
    return importlib.import_module(MODES[argv[0]][0]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
