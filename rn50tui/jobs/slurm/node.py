"""`python -m rn50tui.jobs.slurm.node`: what srun starts on each node of a Slurm job.

It starts that node's torchrun, and beside it samples the node's cards into
`<workspace>/slurm/nodes/<node>.jsonl` (the watcher on the login node reads them: the cards are only
visible from the node that holds them). A stop request reaches it as a file on the shared workspace
(written by the batch script when Slurm's `--signal=B:TERM@grace` fires, or by `rn50tui cancel`), or as
its own SIGTERM (scancel by hand): either way only torchrun gets SIGTERM, which forwards it to the
ranks, so data-loader workers are never signalled and the engine checkpoints.

Cards: Slurm exports CUDA_VISIBLE_DEVICES only for `gres/gpu` (its gres/gpu plugin, SchedMD/slurm
src/plugins/gres/gpu/gres_gpu.c); a site that declares MLUs as `gpu:<type>` with `File=/dev/cambricon_devN`
gets the allocated indices in CUDA_VISIBLE_DEVICES / SLURM_STEP_GPUS, which this runner copies to
MLU_VISIBLE_DEVICES (unless the site's TaskProlog already set it). With a count-only `mlu` gres Slurm
exports nothing and the job owns the node's cards (whole-node allocation), so all stay visible.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

POLL_S = 0.5
GPU_ENV_ORDER = ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "CUDA_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL")


def visible_cards(device: str, env: Mapping[str, str]) -> dict[str, str]:
    """The *_VISIBLE_DEVICES the engine gets on this node (see the module's note on MLU)."""
    if device == "cpu":
        return {"MLU_VISIBLE_DEVICES": "", "CUDA_VISIBLE_DEVICES": ""}
    if device == "mlu":
        if env.get("MLU_VISIBLE_DEVICES"):
            return {}
        for var in GPU_ENV_ORDER:
            if env.get(var):
                return {"MLU_VISIBLE_DEVICES": env[var]}
    return {}


def node_name(env: Mapping[str, str]) -> str:
    return env.get("SLURMD_NODENAME") or socket.gethostname()


class NodeRunner:
    """One node: torchrun as a child, a stop file watched, card samples appended."""

    def __init__(
        self, argv: list[str], workspace: Path, stop_file: Path, device: str, interval: float
    ) -> None:
        self.argv, self.workspace, self.stop_file = argv, workspace, stop_file
        self.device, self.interval = device, interval
        self.node = node_name(os.environ)
        self.samples = workspace / "slurm" / "nodes" / f"{self.node}.jsonl"
        self.term_sent = False
        self.signalled = False

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_term)
        env = dict(os.environ, **visible_cards(self.device, os.environ))
        self.samples.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(self.argv, env=env, stdin=subprocess.DEVNULL)
        sampler, indices = self._sampler(env)
        next_sample = 0.0
        while (rc := proc.poll()) is None:
            if not self.term_sent and (self.signalled or self.stop_file.exists()):
                proc.send_signal(signal.SIGTERM)
                self.term_sent = True
            now = time.time()
            if sampler is not None and now >= next_sample:
                next_sample = now + self.interval
                self._sample(sampler, indices, now)
            time.sleep(POLL_S)
        if sampler is not None:
            sampler.close()
        return rc if rc >= 0 else 128 - rc

    def _on_term(self, _signum: int, _frame: Any) -> None:
        self.signalled = True

    def _sampler(self, env: Mapping[str, str]) -> tuple[Any, Optional[list[int]]]:
        if self.interval <= 0:
            return None, None
        try:
            from engine.telemetry import open_sampler
            from engine.telemetry.cnmon import visible_indices

            sampler = open_sampler(self.device)
        except Exception as exc:  # noqa: BLE001 - no telemetry on this node: the job runs without samples
            print(f"[rn50tui node {self.node}] no card samples: {exc}", file=sys.stderr, flush=True)
            return None, None
        if self.device == "cpu":
            return sampler, [0]
        var = "MLU_VISIBLE_DEVICES" if self.device == "mlu" else "CUDA_VISIBLE_DEVICES"
        return sampler, visible_indices(env.get(var))

    def _sample(self, sampler: Any, indices: Optional[list[int]], now: float) -> None:
        try:
            cards = sampler.sample(indices)
        except Exception:  # noqa: BLE001 - one failed sample is skipped
            return
        lines = [json.dumps({"time": now, "node": self.node, "device": c.kind, "card": c.index, "name": c.name,
                             "util_percent": c.util_percent, "mem_used_mib": c.mem_used_mib,
                             "mem_total_mib": c.mem_total_mib, "temp_c": c.temp_c, "power_w": c.power_w,
                             "power_cap_w": c.power_cap_w}) for c in cards]  # fmt: skip
        with open(self.samples, "a", encoding="utf-8") as fh:
            fh.write("".join(line + "\n" for line in lines))


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rn50tui.jobs.slurm.node", description=__doc__.splitlines()[0])
    p.add_argument("--workspace", required=True)
    p.add_argument("--stop-file", required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--sample-interval", type=float, default=2.0)
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- then torchrun's argv")
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("give the command to run after --")
    runner = NodeRunner(
        command, Path(args.workspace), Path(args.stop_file), args.device, args.sample_interval
    )
    return runner.run()


if __name__ == "__main__":
    sys.exit(main())
