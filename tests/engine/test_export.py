"""engine.export: a trained checkpoint (ours or the port's) leaves as ONNX or pt2 only after its runtime
gives PyTorch's answers; bad input is one line and no file; bench infer times the export."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from engine.classify import preprocess
from engine.data.testing import make_image_folder
from engine.export import TOLERANCE
from engine.export.__main__ import main as export_main
from engine.export.check import Inputs, check_export, synthetic_inputs
from engine.model import build_model
from tests.conftest import engine_env
from tests.engine.test_checkpoint_trust import hostile_checkpoint

onnx = pytest.importorskip("onnx", reason="the onnx extra: pip install 'rn50tui[onnx]'")
pytest.importorskip("onnxruntime", reason="the onnx extra: pip install 'rn50tui[onnx]'")

SIZE, CLASSES = 32, 3


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three classes of generated JPEGs, ImageFolder layout (train/ and val/)."""
    root = tmp_path_factory.mktemp("data")
    return make_image_folder(root, {"train": 3, "val": 3}, num_classes=CLASSES, size=(48, 40))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory, data: Path) -> dict[str, Path]:
    """A model trained two SGD steps on the JPEGs, saved as our engine does and as the port does.

    Zero-init residuals (a recipe option) and BN statistics of the training images, as a trained model
    has: a random-weight ResNet amplifies fp16 rounding past any useful tolerance."""
    torch.manual_seed(0)
    model = build_model("resnet50", "classic", CLASSES, zero_init_residual=True)
    files = sorted((data / "train").rglob("*.JPEG"))
    x = torch.stack([preprocess(str(f), SIZE) for f in files])
    y = torch.tensor([int(f.parent.name.split("_")[1]) for f in files])
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(2):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.reset_running_stats()
        bn.momentum = None  # a cumulative average: the statistics of exactly these images
    with torch.no_grad():
        model(x)
    folder = tmp_path_factory.mktemp("ckpt")
    ours, port = folder / "model_best.pth.tar", folder / "port.pth.tar"
    state = model.state_dict()
    names = [f"class_{k}" for k in range(CLASSES)]
    torch.save({"epoch": 1, "iteration": 0, "arch": "resnet50", "state_dict": state, "best_prec1": 33.3,
                "class_names": names, "format_version": 2}, ours)  # fmt: skip
    torch.save({"epoch": 1, "arch": ("resnet50", "fanin", CLASSES), "best_prec1": 0.0,
                "state_dict": {f"module.{k}": v for k, v in state.items()}}, port)  # fmt: skip
    return {"ours": ours, "port": port}


@pytest.fixture(scope="module")
def untrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh model in the port's form: for the tests that stop before any check (fast to build)."""
    path = tmp_path_factory.mktemp("untrained") / "port.pth.tar"
    state = build_model("resnet50", "classic", CLASSES).state_dict()
    torch.save({"arch": ("resnet50", "fanin", CLASSES), "state_dict": {f"module.{k}": v for k, v in state.items()}},
               path)  # fmt: skip
    return path


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- the checker, on a small stand-in model (fast) ---------------------------------------------------


class Tiny(nn.Module):
    """Conv, BN (eval: its running statistics), ReLU, pool, linear: the layers ResNet's export has."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, CLASSES))  # fmt: skip
        with torch.no_grad():
            self.body[1].running_mean.uniform_(-0.5, 0.5)
            self.body[1].running_var.uniform_(0.5, 2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def tiny_onnx(path: Path) -> nn.Module:
    torch.manual_seed(0)
    model = Tiny().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter's, as engine.export's
        example = (torch.randn(1, 3, SIZE, SIZE),)
        names = {
            "input_names": ["input"],
            "output_names": ["logits"],
            "dynamic_axes": {"input": {0: "batch"}},
        }
        torch.onnx.export(model, example, str(path), dynamo=False, **names)
    return model


def tamper(path: Path, scale: float, shift: float) -> None:
    """Write `(input * scale) + shift` into the graph ahead of every use of its input: a normalisation
    baked in twice, or pixels left in 0..255 (scale 255)."""
    from onnx import helper, numpy_helper

    m = onnx.load(str(path))
    g = m.graph
    name = g.input[0].name
    for node in g.node:
        node.input[:] = ["tampered" if i == name else i for i in node.input]
    g.initializer.extend([numpy_helper.from_array(torch.tensor(scale).numpy(), "t_scale"),
                          numpy_helper.from_array(torch.tensor(shift).numpy(), "t_shift")])  # fmt: skip
    g.node.insert(0, helper.make_node("Mul", [name, "t_scale"], ["scaled"]))
    g.node.insert(1, helper.make_node("Add", ["scaled", "t_shift"], ["tampered"]))
    onnx.checker.check_model(m)
    onnx.save(m, str(path))


@pytest.mark.parametrize(("scale", "shift"), [(1 / 0.226, -0.456 / 0.226), (255.0, 0.0), (1.01, 0.0)],
                         ids=["normalised-twice", "pixels-0-255", "one-percent-gain"])  # fmt: skip
def test_a_wrong_normalisation_written_into_the_graph_fails_the_check(tmp_path, scale, shift):
    path = tmp_path / "tiny.onnx"
    model = tiny_onnx(path)
    inputs = synthetic_inputs(8, SIZE)
    assert check_export(path, "onnx", model, inputs, "fp32", None).ok  # untouched: it passes
    tamper(path, scale, shift)
    result = check_export(path, "onnx", model, inputs, "fp32", None)
    assert not result.ok and result.max_rel_diff > TOLERANCE["fp32"]
    assert "FAILED" in "\n".join(result.lines())


def test_the_check_counts_top1_on_labelled_images(tmp_path):
    path = tmp_path / "tiny.onnx"
    model = tiny_onnx(path)
    x = synthetic_inputs(6, SIZE).images
    labels = model(x).argmax(1).detach()
    result = check_export(path, "onnx", model, Inputs(x, labels, "images"), "fp32", 4)  # 4: a padded tail
    assert result.ok and result.top1_agreement == 1.0
    assert result.top1_pytorch == result.top1_exported == 100.0


# --- bad input: one line, a non-zero exit, no file ---------------------------------------------------


def run_export(capsys, *args: str) -> tuple[int, str, str]:
    code = export_main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_error(err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err and all(n in err for n in needles), err


def test_a_checkpoint_of_another_architecture_is_refused(tmp_path, capsys):
    ckpt = tmp_path / "r18.pth.tar"
    torch.save({"epoch": 1, "arch": "resnet18", "state_dict": {"fc.weight": torch.zeros(3, 512)}}, ckpt)
    out = tmp_path / "out" / "m.onnx"
    out.parent.mkdir()
    code, _, err = run_export(capsys, "--resume", str(ckpt), "--format", "onnx", "--out", str(out))
    assert code == 2
    assert_one_line_error(err, "holds a resnet18 model", "exports resnet50 only")
    assert listing(out.parent) == []


def test_weights_of_another_network_under_no_arch_name_are_refused(tmp_path, capsys):
    from torchvision.models import resnet18

    ckpt = tmp_path / "w.pth"
    torch.save(resnet18(num_classes=CLASSES).state_dict(), ckpt)  # a bare state dict, no arch key
    code, _, err = run_export(
        capsys, "--resume", str(ckpt), "--format", "pt2", "--out", str(tmp_path / "m.pt2")
    )
    assert code == 2
    assert_one_line_error(err, "does not fit resnet50", "missing: ")
    assert listing(tmp_path) == ["w.pth"]


def test_a_class_count_other_than_asked_is_refused(untrained, tmp_path, capsys):
    args = ["--resume", str(untrained), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]
    code, _, err = run_export(capsys, *args, "--num-classes", "1000")
    assert code == 2
    assert_one_line_error(
        err, f"has {CLASSES} classes, but --num-classes is 1000", f"--num-classes {CLASSES}"
    )
    assert listing(tmp_path) == []


def test_an_arch_tuple_that_disagrees_with_the_fc_layer_is_refused(tmp_path, capsys):
    ckpt = tmp_path / "odd.pth.tar"
    state = build_model("resnet50", "classic", CLASSES).state_dict()
    torch.save({"arch": ("resnet50", "classic", 10), "state_dict": state}, ckpt)
    code, _, err = run_export(
        capsys, "--resume", str(ckpt), "--format", "pt2", "--out", str(tmp_path / "m.pt2")
    )
    assert code == 2
    assert_one_line_error(err, "declares 10 classes", f"fc layer has {CLASSES}")


def test_an_unsafe_pickle_is_refused_and_its_payload_never_runs(tmp_path, capsys):
    path, marker = hostile_checkpoint(tmp_path)
    out = tmp_path / "m.onnx"
    code, _, err = run_export(capsys, "--resume", str(path), "--format", "onnx", "--out", str(out))
    assert code == 2
    assert_one_line_error(err, "wants io.open unpickled", "pass --trust-checkpoint")
    assert not marker.exists() and not out.exists()


@pytest.mark.parametrize("where", ["missing-folder", "under-a-file", "a-folder"])
def test_an_output_that_cannot_be_written_is_refused_before_the_export(tmp_path, capsys, where):
    (tmp_path / "file").write_text("x")
    out = {"missing-folder": tmp_path / "nope" / "m.onnx", "under-a-file": tmp_path / "file" / "m.onnx",
           "a-folder": tmp_path}[where]  # fmt: skip
    code, _, err = run_export(
        capsys, "--resume", str(tmp_path / "any.pth"), "--format", "onnx", "--out", str(out)
    )
    assert code == 2
    assert_one_line_error(err, str(out))
    assert listing(tmp_path) == ["file"]


def test_an_opset_the_exporter_lacks_is_refused(tmp_path, capsys):
    code, _, err = run_export(capsys, "--resume", "x.pth", "--format", "onnx", "--out", str(tmp_path / "m.onnx"),
                              "--opset", "99")  # fmt: skip
    assert code == 2
    assert_one_line_error(err, "--opset 99", "writes opsets 7 to")
    assert listing(tmp_path) == []


def test_an_exporter_failure_is_one_line_and_leaves_no_file(untrained, tmp_path, capsys, monkeypatch):
    def broken(*args, **kwargs):
        Path(args[2]).write_bytes(b"half a file")  # what a crash mid-write leaves
        raise RuntimeError(
            "Exporting the operator 'aten::foo' to ONNX opset version 17 is not supported.\nmore"
        )

    monkeypatch.setattr(torch.onnx, "export", broken)
    args = ["--resume", str(untrained), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]
    code, _, err = run_export(capsys, *args)
    assert code == 1
    assert_one_line_error(err, "torch's ONNX exporter failed", "aten::foo", "try another --opset")
    assert listing(tmp_path) == []


def test_without_the_onnx_extra_the_error_names_the_pip_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # an import of it now fails
    code, _, err = run_export(
        capsys, "--resume", "x.pth", "--format", "onnx", "--out", str(tmp_path / "m.onnx")
    )
    assert code == 2
    assert_one_line_error(err, "onnxruntime is not installed", "pip install 'rn50tui[onnx]'")


# --- real exports, run in their runtimes (slow: a ResNet-50 export takes seconds) ---------------------

EXPORTS = [
    ("ours", "onnx", []),
    ("port", "onnx", ["--dynamic-batch"]),
    ("ours", "pt2", ["--dynamic-batch"]),
    ("port", "pt2", ["--batch", "2"]),
    ("ours", "onnx", ["--half", "--dynamic-batch"]),
    ("port", "pt2", ["--half"]),
]


def val_images(data: Path) -> tuple[torch.Tensor, torch.Tensor]:
    files = sorted((data / "val").rglob("*.JPEG"))
    labels = torch.tensor([int(f.parent.name.split("_")[1]) for f in files])
    return torch.stack([preprocess(str(f), SIZE) for f in files]), labels


def run_in_runtime(path: Path, fmt: str, x: torch.Tensor, batch: int | None) -> torch.Tensor:
    """The kept file, loaded as a deployment would (not through engine.export's own checker)."""
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        run = lambda t: torch.from_numpy(session.run(None, {"input": t.numpy()})[0])  # noqa: E731
    else:
        run = torch.export.load(str(path)).module()
    step = batch or len(x)
    rows = []
    for i in range(0, len(x), step):
        chunk = x[i : i + step]
        short = step - len(chunk)
        padded = torch.cat([chunk, chunk[:1].expand(short, *chunk.shape[1:])]) if short else chunk
        with torch.no_grad():
            rows.append(run(padded)[: len(chunk)].float())
    return torch.cat(rows)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("which", "fmt", "extra"), EXPORTS, ids=["-".join([w, f, *e]) for w, f, e in EXPORTS]
)
def test_an_export_runs_in_its_runtime_and_matches_pytorch(
    checkpoints, data, tmp_path, capsys, which, fmt, extra
):
    out = tmp_path / f"m.{fmt}"
    args = [
        "--resume",
        str(checkpoints[which]),
        "--format",
        fmt,
        "--out",
        str(out),
        "--image-size",
        str(SIZE),
    ]
    code, stdout, err = run_export(capsys, *args, "--data", str(data), *extra)
    assert code == 0, err
    half = "--half" in extra
    precision = "fp16" if half else "fp32"
    assert f"check: 9 images from {data / 'val'}" in stdout and "val top-1: exported" in stdout
    assert f"(tolerance {TOLERANCE[precision]:g}, {precision}): ok" in stdout
    assert listing(tmp_path) == [out.name, f"{out.name}.json"]  # no temp file left
    meta = json.loads(Path(f"{out}.json").read_text())
    assert meta["check"]["ok"] and meta["precision"] == precision and meta["format"] == fmt
    assert meta["input"]["layout"] == "NCHW" and meta["input"]["mean"] == [0.485, 0.456, 0.406]
    assert meta["class_names"] == ([f"class_{k}" for k in range(CLASSES)] if which == "ours" else None)
    assert meta["source"]["checkpoint"] == str(checkpoints[which].resolve())
    if fmt == "onnx":
        props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
        assert props["std"] == "0.229,0.224,0.225" and props["input_size"] == str(SIZE)
        assert json.loads(props["rn50tui"])["arch"] == "resnet50"
    x, labels = val_images(data)
    model = build_model("resnet50", "classic", CLASSES)
    model.load_state_dict(torch.load(checkpoints["ours"], weights_only=True)["state_dict"])
    with torch.no_grad():
        ref = model.eval()(x)
    batch = (
        None
        if "--dynamic-batch" in extra
        else int(extra[extra.index("--batch") + 1])
        if "--batch" in extra
        else 1
    )
    y = run_in_runtime(out, fmt, x.half() if half else x, batch)
    assert ((y - ref).abs().max() / ref.abs().max()).item() <= TOLERANCE[precision]
    assert meta["check"]["top1_exported"] == pytest.approx(
        100 * (y.argmax(1) == labels).float().mean().item()
    )


@pytest.mark.slow
def test_an_export_beyond_tolerance_fails_and_keeps_no_file(checkpoints, tmp_path, capsys, monkeypatch):
    from engine.export import check

    real = check.pt2_runner
    monkeypatch.setattr(check, "pt2_runner", lambda path: lambda x, run=real(path): run(x) * 1.01)
    args = ["--resume", str(checkpoints["ours"]), "--format", "pt2", "--out", str(tmp_path / "m.pt2")]
    code, stdout, err = run_export(capsys, *args, "--image-size", str(SIZE), "--check-images", "4")
    assert code == 1 and "FAILED" in stdout
    assert_one_line_error(err, "differs from PyTorch beyond tolerance", "nothing was written")
    assert listing(tmp_path) == []


@pytest.fixture(scope="module")
def dynamic_onnx(checkpoints, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "m.onnx"
    args = ["--resume", str(checkpoints["port"]), "--format", "onnx", "--out", str(out), "--dynamic-batch"]
    assert export_main([*args, "--image-size", str(SIZE), "--check-images", "2"]) == 0
    return out


@pytest.mark.slow
def test_bench_infer_times_the_onnx_model_beside_pytorch(dynamic_onnx, tmp_path):
    record = tmp_path / "infer.jsonl"
    args = ["infer", "--model", str(dynamic_onnx), "--batch-sizes", "1,2", "--iters", "2", "--warmup", "1",
            "--warmup-window", "2", "--warmup-budget", "1", "--device", "cpu", "--json", str(record)]  # fmt: skip
    out = subprocess.run([sys.executable, "-m", "engine.bench", *args], cwd=tmp_path, env=engine_env(),
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("warm-up per configuration: 1 iterations, then windows of 2")
    assert "p50 ms" in out.stdout and "p99 ms" in out.stdout and "img/s" in out.stdout
    rows = [json.loads(line) for line in record.read_text().splitlines()]
    runs = [(r["runtime"], r["precision"].startswith("amp"), r["batch_size"]) for r in rows]
    assert runs == [("pytorch", False, 1), ("pytorch", False, 2), ("pytorch", True, 1), ("pytorch", True, 2),
                    ("onnxruntime", False, 1), ("onnxruntime", False, 2)]  # fmt: skip
    for r in rows:
        assert (
            r["images_per_s"] > 0
            and r["latency_p99_ms"] >= r["latency_p50_ms"] > 0
            and r["image_size"] == SIZE
        )
        assert r["warmup_iters"] >= 3 and isinstance(r["warmup_settled"], bool)
    printed = [line.split() for line in out.stdout.splitlines() if line.split()[:1] == ["onnxruntime"]]
    assert [p[2] for p in printed] == ["1", "2"]
    assert "UserWarning" not in out.stderr and "training" not in out.stderr
