"""`rn50tui data prepare`: both downloaded forms give the same dataset, every image in it decodes as RGB
with the engine's decoder, the traps are rewritten or left out and listed, and a kill -9 costs nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.data.decode import decode_rgb, jpeg_frame
from engine.data.prepare.run import DIE_AFTER_ENV
from tests.conftest import run_engine
from tests.data.conftest import cli, cli_process, tree


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, official, kaggle) -> dict[str, Path]:
    out = {}
    for name, src in (("official", official), ("kaggle", kaggle)):
        dest = tmp_path_factory.mktemp("prepared") / name
        code, stdout, stderr = cli("data", "prepare", str(src), str(dest), "-j", "2")
        assert code == 0, stderr
        assert ("official archives" if name == "official" else "Kaggle tree") in stdout
        assert "MiB/s" in stdout and "images/s" in stdout and "MiB free" in stdout
        out[name] = dest
    return out


def test_official_archives_and_kaggle_tree_give_identical_lists_and_images(prepared):
    a, b = prepared["official"], prepared["kaggle"]
    for name in ("train.txt", "val.txt"):
        assert (a / name).read_text() == (b / name).read_text()
    images = {k: v for k, v in tree(a).items() if k.startswith(("train/", "val/"))}
    assert images == {k: v for k, v in tree(b).items() if k.startswith(("train/", "val/"))}


def test_labels_are_sorted_wnid_indices_whatever_the_devkit_ids(prepared, mini_data):
    wnids = sorted(mini_data["train"])
    for line in (prepared["official"] / "val.txt").read_text().splitlines():
        path, label = line.rsplit(" ", 1)
        assert path.split("/")[1] == wnids[int(label)]
    truth = {name: w for name, w, _ in mini_data["val"]}
    val = (prepared["official"] / "val").glob("*/*.JPEG")
    assert all(truth[p.name] == p.parent.name for p in val)  # meta.mat's IDs mapped to the right wnid


def test_every_image_decodes_as_rgb_and_the_traps_are_listed(prepared):
    dest = prepared["official"]
    for path in (dest / "train").glob("*/*"):
        buf = bytearray(path.read_bytes())
        assert jpeg_frame(buf)[2] == 3, path  # a 3-channel JPEG: CMYK and PNG were rewritten
        assert decode_rgb(buf, str(path)).shape[0] == 3
    manifest = json.loads((dest / "manifest.json").read_text())
    assert {r["why"] for r in manifest["rewritten"]} == {"CMYK JPEG", "PNG named .JPEG"}
    assert [r["path"].split("/")[0] for r in manifest["dropped"]] == ["train", "val"]
    for r in manifest["dropped"]:
        assert not (dest / r["path"]).exists()
    for r in manifest["rewritten"]:
        assert (dest / r["path"]).exists()  # same name as before
    assert manifest["counts"] == {"train": 19, "val": 7} and manifest["source_form"] == "official archives"
    first = manifest["classes"][0]
    assert (first["label"], first["wnid"], first["name"], first["train"]) == (
        0,
        "n01440764",
        "tench, Tinca tinca",
        5,
    )
    assert sum(c["val"] for c in manifest["classes"]) == 7
    assert not (dest / ".prepare").exists() and not list(dest.rglob("*.partial"))


def test_a_rerun_of_a_finished_prepare_does_nothing(prepared, official):
    before = tree(prepared["official"])
    code, stdout, _ = cli("data", "prepare", str(official), str(prepared["official"]))
    assert code == 0 and "already prepared" in stdout
    assert tree(prepared["official"]) == before


def test_resize_caps_the_shorter_side(tmp_path, official):
    from PIL import Image

    code, _, stderr = cli(
        "data", "prepare", str(official), str(tmp_path / "small"), "-j", "1", "--resize", "24"
    )
    assert code == 0, stderr
    sizes = [Image.open(p).size for p in (tmp_path / "small").glob("*/*/*.JPEG")]
    assert sizes and all(min(s) <= 24 for s in sizes)
    assert json.loads((tmp_path / "small" / "manifest.json").read_text())["resize"] == 24


@pytest.mark.slow
def test_a_kill_9_half_way_and_a_rerun_give_the_same_dest_byte_for_byte(tmp_path, official, prepared):
    dest = tmp_path / "dest"
    out = cli_process("data", "prepare", str(official), str(dest), "-j", "2", **{DIE_AFTER_ENV: "2"})
    assert out.returncode == -9, out.stderr
    done = [p.name for p in (dest / "train").iterdir() if not p.name.startswith(".")]
    assert 2 <= len(done) < 4 and not (dest / "manifest.json").exists() and not (dest / "train.txt").exists()
    again = cli_process("data", "prepare", str(official), str(dest), "-j", "2")
    assert again.returncode == 0, again.stderr
    assert f"resuming: {len(done)} of 4" in again.stdout
    assert tree(dest) == tree(prepared["official"])


@pytest.mark.slow
def test_the_engine_trains_on_the_result_with_no_image_skipped(tmp_path, prepared):
    data = tmp_path / "data"
    shutil.copytree(prepared["kaggle"], data)
    ws = tmp_path / "ws"
    flags = ["--device", "cpu", "--image-size", "32", "-b", "4", "-j", "0", "--epochs", "1", "--seed", "1",
             "--num-classes", "4", "--workspace", str(ws), "--raport-file", "raport.json"]  # fmt: skip
    out = run_engine([str(data), *flags], cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "skipping unreadable image" not in out.stderr
    from engine.events import iter_records

    summary = [r.data for r in iter_records(ws / "raport.json") if r.phase == "summary"][0]
    assert summary["data.skipped_images"] == 0
