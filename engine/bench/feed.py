"""How many cards this host's cores feed: measured per-core pipeline images/s against a card's training rate.

    cards fed = cores × per-core images/s ÷ one card's training images/s

Per-core images/s is the engine's own pipeline (the training transform, `new` in `engine.bench data`),
measured at the most workers timed; the card's rate is `--card-ips`, or NVIDIA's published 1-card AMP
training figure (published.json) of DEFAULT_CARD. Every core is counted as a decoder: the training
process itself, the collective's threads and the OS take some, so read the figure as an upper bound.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from engine.bench.published import load_published

DEFAULT_CARD = "V100 32GB"  # NVIDIA's slowest published AMP card: a modest host is judged against it


@dataclass(frozen=True)
class FeedEstimate:
    """Cards this host feeds at `card_ips` each, from `cores` × `per_core_ips`."""

    cores: int
    per_core_ips: float
    card_ips: float
    card_source: str  # where card_ips comes from: --card-ips, or the published card and precision

    @property
    def host_ips(self) -> float:
        return self.cores * self.per_core_ips

    @property
    def cards(self) -> float:
        return self.host_ips / self.card_ips if self.card_ips > 0 else 0.0

    def line(self) -> str:
        return (
            f"this host feeds {self.cards:.1f} cards at {self.card_ips:,.0f} img/s each ({self.cores} cores × "
            f"{self.per_core_ips:,.0f} img/s per core = {self.host_ips:,.0f} img/s; card rate: {self.card_source})"
        )


def host_cores() -> int:
    """The cores this process may run on (a container's or a Slurm allocation's share, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def published_card_ips(card: str = DEFAULT_CARD) -> tuple[float, str]:
    """NVIDIA's published 1-card AMP training images/s of `card`, and where it comes from."""
    published = load_published()
    for entry in published["cards"]:
        if entry["card"] == card and entry.get("training"):
            ips = float(entry["training"]["images_per_s"]["1"]["amp"])
            return ips, f"NVIDIA's published 1-card AMP figure for {card} (engine/bench/published.json)"
    raise KeyError(f"published.json has no training figures for {card}")


def estimate(
    rates: dict[int, float], card_ips: Optional[float] = None, cores: Optional[int] = None
) -> FeedEstimate:
    """From {workers: images/s} of the engine's pipeline: per-core at the most workers timed."""
    workers = max(rates)
    per_core = rates[workers] / workers
    if card_ips is None:
        card_ips, source = published_card_ips()
    else:
        source = "--card-ips"
    return FeedEstimate(cores or host_cores(), per_core, float(card_ips), source)
