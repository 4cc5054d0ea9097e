"""CPU time per sample of each telemetry backend: is sampling at 1 Hz cheap?

    python benchmarks/telemetry_bench.py [--samples 50]

cnmon is measured with a fake `cnmon` on PATH (a shell script that cats a recorded table), the
subprocess included: our side's cost (start, read, parse), not the real tool's driver queries.
NVML is measured for real where pynvml and a GPU exist, else through the tests' stand-in module
(Python overhead only; said so in the output). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.telemetry.cnmon import CnmonSampler, parse_table  # noqa: E402
from engine.telemetry.cpu import CpuSampler  # noqa: E402
from engine.telemetry.detect import HostSampler  # noqa: E402
from engine.telemetry.nvml import NvmlSampler  # noqa: E402
from engine.telemetry.stats import TelemetryUnavailable  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures" / "cnmon"


def _children_cpu_s() -> float:
    """CPU seconds of finished child processes (microsecond resolution, unlike os.times' ticks)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(label: str, sample: Callable[[], object], samples: int) -> None:
    """Print wall and CPU milliseconds per call, our process and its children apart."""
    sample()  # warm-up: imports, caches, the CPU sampler's first wait
    wall0, own0, children0 = time.perf_counter(), time.process_time(), _children_cpu_s()
    for _ in range(samples):
        sample()
    wall = time.perf_counter() - wall0
    own, children = time.process_time() - own0, _children_cpu_s() - children0
    per = 1000.0 / samples
    print(
        f"{label:<40} cpu {(own + children) * per:7.3f} ms/sample "
        f"(ours {own * per:6.3f}, subprocesses {children * per:6.3f})  wall {wall * per:7.3f} ms  "
        f"[{samples} samples]"
    )


def fake_cnmon_dir(fixture: Path, directory: Path) -> Path:
    script = directory / "cnmon"
    script.write_text(f"#!/bin/sh\ncat '{fixture}'\n")
    script.chmod(0o755)
    return directory


def nvml_sampler() -> tuple[NvmlSampler, str]:
    """A real NVML sampler when this host has one, else one over the tests' stand-in module."""
    try:
        return NvmlSampler(), "real NVML"
    except TelemetryUnavailable as exc:
        from tests.telemetry.conftest import make_fake_pynvml, two_gpus

        return NvmlSampler(make_fake_pynvml(two_gpus())), f"stand-in module, since {exc}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=50, help="samples per backend (default 50)")
    parser.add_argument("--fixture", default="v5.10.13_2x_mlu370-x8.txt", help="cnmon table to serve")
    args = parser.parse_args()
    fixture = FIXTURES / args.fixture
    print(
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; fixture {fixture.name}"
    )

    text = fixture.read_text()
    measure("cnmon: parse_table only", lambda: parse_table(text), args.samples * 20)
    with tempfile.TemporaryDirectory() as tmp:
        bindir = fake_cnmon_dir(fixture, Path(tmp))
        cnmon = CnmonSampler(env={"PATH": str(bindir)})
        measure("cnmon: fake cnmon subprocess + parse", cnmon.sample, args.samples)

        nvml, how = nvml_sampler()
        measure("nvml: all cards", nvml.sample, args.samples * 20)
        print(f"  (nvml measured through the {how})")
        nvml.close()

        cpu = CpuSampler(min_interval=0.0)
        measure("cpu: psutil (load, memory, sensors)", cpu.sample, args.samples * 20)

        host = HostSampler(env={**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"})
        measure(f"host: every kind ({', '.join(host.samplers)})", host.sample, args.samples)
        print(
            "  (host wall time includes the CPU sampler's 0.1 s minimum interval between back-to-back samples)"
        )
        host.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
