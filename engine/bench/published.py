"""NVIDIA's published ResNet-50 v1.5 figures (published.json, with its source) for the card a report ran on."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Optional

PUBLISHED_FILE = Path(__file__).with_name("published.json")


def load_published(path: Path = PUBLISHED_FILE) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def card_entry(device_name: str, published: dict[str, Any]) -> Optional[dict[str, Any]]:
    """The published card whose every pattern is in `device_name` ("Tesla V100-SXM2-16GB" → V100 16GB)."""
    for card in published["cards"]:
        if all(re.search(p, device_name, re.IGNORECASE) for p in card["match"]):
            return card
    return None


def why_none(device_kind: str, device_name: str, published: dict[str, Any]) -> str:
    cards = ", ".join(c["card"] for c in published["cards"])
    if device_kind != "cuda":
        return f"NVIDIA publishes figures for its GPUs only ({cards}); this is {device_kind.upper()} {device_name}"
    return f"NVIDIA's ResNet-50 v1.5 README has no figures for {device_name} (it has {cards})"


def training_rows(card: dict[str, Any], ours_amp: Optional[float], ours_batch: Optional[int]) -> list[dict]:
    """One card's published 1-GPU training images/s beside ours (AMP + channels-last)."""
    training = card.get("training")
    if not training:
        return []
    one = training["images_per_s"]["1"]
    rows = []
    for precision, value in one.items():
        rows.append(
            {
                "precision": precision,
                "published_images_per_s": value,
                "published_batch": training["batch_per_gpu"].get(precision),
                "ours_images_per_s": ours_amp if precision == "amp" else None,
                "ours_batch": ours_batch if precision == "amp" else None,
            }
        )
    return rows


def inference_rows(card: dict[str, Any], ours: list[dict[str, Any]]) -> list[dict]:
    """Published inference rows (batch, img/s, mean/p95/p99 ms) beside ours at the same batch and precision."""
    inference = card.get("inference")
    if not inference:
        return []
    mine = {(r["precision"], r["batch_size"]): r for r in ours if not r.get("compiled")}
    rows = []
    for precision, table in inference.items():
        for pub in table:
            got = mine.get((precision, pub["batch"]), {})
            rows.append(
                {
                    "precision": precision,
                    "batch": pub["batch"],
                    "published_images_per_s": pub["images_per_s"],
                    "published_latency_p99_ms": pub["latency_p99_ms"],
                    "ours_images_per_s": got.get("images_per_s"),
                    "ours_latency_p99_ms": got.get("latency_p99_ms"),
                }
            )
    return rows
