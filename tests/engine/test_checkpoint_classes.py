"""A checkpoint says how many classes it has: --evaluate (the infer script) needs no --num-classes."""

from __future__ import annotations

import pytest

from engine.events import iter_records
from tests.conftest import run_engine

pytestmark = pytest.mark.slow

TINY = ["--data-backend", "synthetic", "--device", "cpu", "--image-size", "32", "-b", "4", "-j", "0",
        "--synthetic-size", "8", "--epochs", "1", "--warmup", "0", "--raport-file", "raport.json"]  # fmt: skip


def test_evaluate_takes_the_class_count_from_the_checkpoint_and_an_explicit_other_is_refused(tmp_path):
    trained = tmp_path / "trained"
    assert (
        run_engine([*TINY, "--num-classes", "4", "--workspace", str(trained)], cwd=tmp_path).returncode == 0
    )
    ckpt = str(trained / "checkpoint.pth.tar")
    out = run_engine(
        [*TINY, "--evaluate", "--resume", ckpt, "--workspace", str(tmp_path / "infer")], cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"{ckpt} holds a 4-class model: --num-classes 4 is used" in out.stderr
    params = next(r.data for r in iter_records(tmp_path / "infer" / "raport.json") if r.step == "PARAMETER")
    assert params["num_classes"] == 4
    wrong = run_engine([*TINY, "--evaluate", "--resume", ckpt, "--num-classes", "10",
                        "--workspace", str(tmp_path / "wrong")], cwd=tmp_path)  # fmt: skip
    assert wrong.returncode != 0 and "pass --num-classes 4" in wrong.stderr.strip().splitlines()[-1]
