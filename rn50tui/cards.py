"""How a card's values read, in one place: `rn50tui devices`, the app's devices screen and its card panels.

Takes the values of a telemetry CardStats or of a stored DeviceSample alike; a value the device does not
report reads as NONE, never as a made-up 0. No rich, textual or torch here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

NONE = "—"


def util_text(value: Optional[float]) -> str:
    return NONE if value is None else f"{value:.0f} %"


def memory_text(used: Optional[float], total: Optional[float]) -> str:
    return _of(used, total, "{:.0f}", "MiB")


def temp_text(value: Optional[float]) -> str:
    return NONE if value is None else f"{value:.0f} °C"


def power_text(used: Optional[float], cap: Optional[float]) -> str:
    return _of(used, cap, "{:g}", "W")


def _of(used: Optional[float], limit: Optional[float], spec: str, unit: str) -> str:
    """ "used / limit unit", "used unit" without a limit, NONE without either."""
    if used is None and limit is None:
        return NONE
    text = NONE if used is None else spec.format(used)
    return f"{text} {unit}" if limit is None else f"{text} / {spec.format(limit)} {unit}"


def name_text(kind: str, name: Optional[str], cores: Optional[int] = None) -> str:
    """The card's model; a CPU says how many cores it has."""
    return f"{name or NONE} ({cores} cores)" if kind == "cpu" and cores else (name or NONE)


def metric_text(
    metric: str, value: Optional[float], mem_total: Optional[float], power_cap: Optional[float]
) -> str:
    """One value of a card, by its DeviceSample / CardStats field name."""
    if metric == "util_percent":
        return util_text(value)
    if metric == "mem_used_mib":
        return memory_text(value, mem_total)
    if metric == "temp_c":
        return temp_text(value)
    if metric == "power_w":
        return power_text(value, power_cap)
    raise ValueError(f"no text for card metric {metric!r}")


@dataclass(frozen=True)
class CardRow:
    """A card as one row of text cells (the CLI adds its bus id, both tables their holder)."""

    kind: str
    card: str
    name: str
    util: str
    memory: str
    temp: str
    power: str


def card_row(card: Any) -> CardRow:
    """The row of a telemetry CardStats (anything with its fields)."""
    cores = card.extra.get("cores_logical") if getattr(card, "extra", None) else None
    return CardRow(card.kind, str(card.index), name_text(card.kind, card.name, cores),
                   util_text(card.util_percent), memory_text(card.mem_used_mib, card.mem_total_mib),
                   temp_text(card.temp_c), power_text(card.power_w, card.power_cap_w))  # fmt: skip
