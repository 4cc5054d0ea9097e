"""DEST's lists and manifest, made from the folders as written (the truth) and the per-class reports."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from engine.data.prepare.sources import Source
from engine.data.prepare.write import Report


def images_of(folder: Path) -> list[str]:
    """A class folder's image names, sorted (the order ImageFolder and the lists use)."""
    if not folder.is_dir():
        return []
    return sorted(e.name for e in os.scandir(folder) if e.is_file() and not e.name.startswith("."))


def list_lines(dest: Path, split: str, wnids: list[str]) -> str:
    """`split/<wnid>/<file> label` per image, label = the wnid's index in sorted order."""
    return "".join(
        f"{split}/{w}/{name} {label}\n"
        for label, w in enumerate(wnids)
        for name in images_of(dest / split / w)
    )


def build_manifest(dest: Path, source: Source, identity: dict[str, Any], state: Path) -> dict[str, Any]:
    """wnid, class name and counts per split; the source; every rewritten and dropped image."""
    reports = Report()
    for path in sorted(state.glob("*.json")):
        if path.name != "run.json":
            reports.add(Report.from_json(json.loads(path.read_text())))
    classes = [
        {"label": i, "wnid": w, "name": source.names[w],
         "train": len(images_of(dest / "train" / w)), "val": len(images_of(dest / "val" / w))}
        for i, w in enumerate(sorted(source.names))
    ]  # fmt: skip
    return {
        "identity": identity,
        "source_form": source.form,
        "resize": identity["resize"],
        "counts": {s: sum(c[s] for c in classes) for s in ("train", "val")},
        "classes": classes,
        "rewritten": [{"path": p, "why": w} for p, w in sorted(reports.rewritten)],
        "dropped": [{"path": p, "why": w} for p, w in sorted(reports.dropped)],
    }
