"""Time to accuracy as people read it: from the engine's `best` records (a job's `time_to_best` column).

Each entry is ``{top1, epoch, train_seconds}``: a new best val top-1 (the better of the model's and the
EMA's), its epoch (from 1) and the run's training + validation wall time until then, summed over attempts
(time queued, stopped, or loading and saving checkpoints not counted; engine/progress.py).
"""

from __future__ import annotations

import json
import math
from typing import Any, Optional

from rn50tui.timefmt import duration

STEP = 5.0  # `jobs show` names the first time each multiple of 5% top-1 was reached, then the best


def history_of(value: Any) -> list[dict[str, Any]]:
    """The entries of a stored column (JSON text), of a decoded list, or [] for none."""
    if not value:
        return []
    entries = json.loads(value) if isinstance(value, str) else value
    return [e for e in entries if isinstance(e, dict) and {"top1", "epoch", "train_seconds"} <= e.keys()]


def time_to(history: list[dict[str, Any]], top1: float) -> Optional[dict[str, Any]]:
    """The first entry at or above `top1`, None when the run never reached it."""
    return next((e for e in history if e["top1"] >= top1), None)


def milestones(history: list[dict[str, Any]], step: float = STEP) -> list[tuple[float, dict[str, Any]]]:
    """(threshold, first entry reaching it) for each multiple of `step` reached, in order."""
    if not history:
        return []
    top = max(e["top1"] for e in history)
    out = []
    for k in range(1, int(math.floor(top / step)) + 1):
        entry = time_to(history, k * step)
        if entry is not None:
            out.append((k * step, entry))
    return out


def lines(history: list[dict[str, Any]]) -> list[str]:
    """`time to 75%: 3h41m (epoch 37, 75.12% top-1)` per milestone, then the best so far."""
    out = [
        f"time to {threshold:g}%: {duration(e['train_seconds'])} (epoch {e['epoch']}, {e['top1']:.2f}% top-1)"
        for threshold, e in milestones(history)
    ]
    if history:
        best = max(history, key=lambda e: e["top1"])
        out.append(
            f"best {best['top1']:.2f}% top-1 after {duration(best['train_seconds'])} (epoch {best['epoch']})"
        )
    return out


def common_target(histories: list[list[dict[str, Any]]], step: float = STEP) -> Optional[float]:
    """The highest multiple of `step` every run reached (what compare times them to first); None if one
    has no best yet or none reached `step`."""
    bests = [max((e["top1"] for e in h), default=None) for h in histories]
    if not bests or any(b is None for b in bests):
        return None
    target = math.floor(min(bests) / step) * step  # type: ignore[type-var]
    return target if target >= step else None


def compare_line(runs: list[tuple[str, list[dict[str, Any]]]], target: float) -> str:
    """`time to 75%: 3 demo 3h41m (epoch 37) · 5 other not reached (best 73.10%)`."""
    parts = []
    for label, history in runs:
        entry = time_to(history, target)
        if entry is not None:
            parts.append(f"{label} {duration(entry['train_seconds'])} (epoch {entry['epoch']})")
        else:
            best = max((e["top1"] for e in history), default=None)
            parts.append(f"{label} not reached" + (f" (best {best:.2f}%)" if best is not None else ""))
    return f"time to {target:g}% top-1: " + " · ".join(parts)
