"""`rn50tui presets`: the presets `submit --preset` accepts."""

from __future__ import annotations

import argparse
from typing import Any

from rn50tui.jobs.presets import PRESETS


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register `presets` on the CLI's subparsers."""
    pr = sub.add_parser("presets", parents=[common], help="list the presets `submit --preset` accepts",
                   description="The presets: the seed's NGC scripts and a CPU demo.")  # fmt: skip
    pr.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    for p in PRESETS.values():
        print(f"{p.name:<14} {p.kind:<6} {p.description}")
    return 0
