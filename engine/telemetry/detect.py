"""Which device backends this host has, and one sample of every card of every kind.

A missing backend (no cnmon, no NVML) is a reason string in `HostReport.unavailable`, never an
exception; a backend that is present but fails a sample is a string in `HostReport.errors`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Optional

from engine.telemetry import cnmon, cpu, nvml
from engine.telemetry.stats import KINDS, CardStats, Sampler, TelemetryUnavailable

# How each kind's empty answer reads: "no MLU card found (<reason>)".
LABELS = {"mlu": "MLU", "cuda": "CUDA", "cpu": "CPU"}


@dataclass
class HostReport:
    """One sample of the host: cards per kind, and why a kind has none."""

    cards: dict[str, list[CardStats]] = field(default_factory=lambda: {kind: [] for kind in KINDS})
    unavailable: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    sampled_at: float = 0.0

    def all_cards(self) -> list[CardStats]:
        """Every card, MLU first, then CUDA, then CPU."""
        return [card for kind in KINDS for card in self.cards.get(kind, [])]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "sampled_at": self.sampled_at,
            "cards": [card.to_dict() for card in self.all_cards()],
            "unavailable": dict(self.unavailable),
            "errors": dict(self.errors),
        }


def open_sampler(
    kind: str,
    *,
    cnmon_path: Optional[str] = None,
    timeout: float = cnmon.DEFAULT_TIMEOUT_S,
    env: Optional[Mapping[str, str]] = None,
    nvml_module: Optional[ModuleType] = None,
) -> Sampler:
    """The sampler for one kind; TelemetryUnavailable (with the reason) when the host lacks it."""
    if kind == "mlu":
        return cnmon.CnmonSampler(cnmon_path, timeout=timeout, env=env)
    if kind == "cuda":
        return nvml.NvmlSampler(nvml_module, env=env)
    if kind == "cpu":
        return cpu.CpuSampler()
    raise ValueError(f"unknown device kind {kind!r}; expected one of {', '.join(KINDS)}")


class HostSampler:
    """Samplers for every kind the host has, kept open across samples (NVML stays initialised,
    the CPU baseline carries over). Blocking: call `sample` off the UI thread."""

    def __init__(
        self,
        kinds: Sequence[str] = KINDS,
        *,
        cnmon_path: Optional[str] = None,
        timeout: float = cnmon.DEFAULT_TIMEOUT_S,
        env: Optional[Mapping[str, str]] = None,
        nvml_module: Optional[ModuleType] = None,
    ) -> None:
        self.samplers: dict[str, Sampler] = {}
        self.unavailable: dict[str, str] = {}
        for kind in kinds:
            try:
                self.samplers[kind] = open_sampler(
                    kind, cnmon_path=cnmon_path, timeout=timeout, env=env, nvml_module=nvml_module
                )
            except TelemetryUnavailable as exc:
                self.unavailable[kind] = str(exc)

    def sample(self) -> HostReport:
        """One sample of every card of every available kind."""
        report = HostReport(unavailable=dict(self.unavailable), sampled_at=time.time())
        for kind, sampler in self.samplers.items():
            try:
                report.cards[kind] = sampler.sample()
            except Exception as exc:  # noqa: BLE001 - one backend's failure must not hide the others
                report.errors[kind] = str(exc) if isinstance(exc, TelemetryUnavailable) else repr(exc)
                continue
            if not report.cards[kind]:
                report.unavailable[kind] = _empty_reason(kind)
        return report

    def close(self) -> None:
        """Release every backend (NVML shutdown)."""
        for sampler in self.samplers.values():
            sampler.close()
        self.samplers.clear()

    def __enter__(self) -> HostSampler:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _empty_reason(kind: str) -> str:
    return {"mlu": "cnmon lists no card", "cuda": "NVML sees no card"}.get(kind, "no card reported")


def detect_backends(
    *,
    cnmon_path: Optional[str] = None,
    env: Optional[Mapping[str, str]] = None,
    nvml_module: Optional[ModuleType] = None,
) -> dict[str, Optional[str]]:
    """Kind → None when the host has that backend, else the reason it has not. Runs nothing slow:
    cnmon is looked up, not run."""
    found: dict[str, Optional[str]] = {}
    try:
        cnmon.find_cnmon(cnmon_path, env)
        found["mlu"] = None
    except TelemetryUnavailable as exc:
        found["mlu"] = str(exc)
    try:
        nvml.NvmlSampler(nvml_module, env=env).close()
        found["cuda"] = None
    except TelemetryUnavailable as exc:
        found["cuda"] = str(exc)
    found["cpu"] = None
    return found


def sample_all(
    *,
    cnmon_path: Optional[str] = None,
    timeout: float = cnmon.DEFAULT_TIMEOUT_S,
    env: Optional[Mapping[str, str]] = None,
    nvml_module: Optional[ModuleType] = None,
) -> HostReport:
    """One sample of every card of every kind on this host (opens and closes every backend)."""
    with HostSampler(cnmon_path=cnmon_path, timeout=timeout, env=env, nvml_module=nvml_module) as host:
        return host.sample()
