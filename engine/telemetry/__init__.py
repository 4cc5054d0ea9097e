"""Per-card device telemetry: MLU through cnmon, CUDA through NVML, CPU through psutil. No torch here.

    from engine.telemetry import sample_all
    report = sample_all()          # every card of every kind, and why a kind has none
    report.cards["mlu"], report.unavailable.get("cuda")

The supervisor keeps one sampler open for its job's cards: `open_sampler("mlu").sample([2, 3])`.
"""

from engine.telemetry.detect import HostReport, HostSampler, detect_backends, open_sampler, sample_all
from engine.telemetry.stats import KINDS, CardStats, ProcessInfo, Sampler, TelemetryUnavailable

__all__ = [
    "KINDS",
    "CardStats",
    "HostReport",
    "HostSampler",
    "ProcessInfo",
    "Sampler",
    "TelemetryUnavailable",
    "detect_backends",
    "open_sampler",
    "sample_all",
]
