"""The boundaries of docs/architecture.md, enforced: the engine never imports the interface, and the interface and
the torch-free parts of the engine never import torch (the CLI must start fast). Each module is imported
in a fresh interpreter, so one test cannot hide another's imports."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, engine_env

TORCH_FREE_PACKAGES = ["engine/telemetry", "rn50tui"]
TORCH_FREE_MODULES = [
    "engine.config",
    "engine.flags",
    "engine.testhooks",
    "engine.events",
    "engine.device_kind",
    "engine.diskspace",
    "engine.tensorboard",
    "engine.data",  # its names load on first use: a prepare and its workers start without torch
    "engine.data.decode",  # torch on the first tensor decode; verify_rgb needs PIL alone
]
TORCH_FREE_MODULES += [  # what a prepare and a data check run (miniature, a test helper, renders with torch)
    f"engine.data.prepare.{m}" for m in ("run", "write", "sources", "devkit", "manifest", "check", "errors")
]


def modules_under(rel: str) -> list[str]:
    base = ROOT / rel
    mods = []
    for path in sorted(base.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        mods.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return mods


def loaded_after_import(module: str) -> set[str]:
    code = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=engine_env(),
        cwd=ROOT.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, f"importing {module} failed:\n{out.stderr}"
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def torch_free_modules() -> list[str]:
    mods = TORCH_FREE_MODULES + [m for pkg in TORCH_FREE_PACKAGES for m in modules_under(pkg)]
    return [m for m in mods if not m.endswith("__main__")]


@pytest.mark.parametrize("module", torch_free_modules())
def test_torch_free_module_does_not_load_torch(module):
    loaded = loaded_after_import(module)
    assert "torch" not in loaded, f"{module} imports torch at module level"
    if module.startswith("engine"):
        assert "textual" not in loaded and "rn50tui" not in loaded


def test_engine_never_imports_the_interface():
    pattern = re.compile(r"^\s*(import|from)\s+(textual|rn50tui)\b", re.MULTILINE)
    offenders = [
        str(p.relative_to(ROOT)) for p in (ROOT / "engine").rglob("*.py") if pattern.search(p.read_text())
    ]
    assert offenders == []


def test_training_entry_point_loads_no_textual():
    loaded = loaded_after_import("engine.train")
    assert "textual" not in loaded and "rn50tui" not in loaded


def test_package_directories_are_found():
    assert len(torch_free_modules()) > len(TORCH_FREE_MODULES)  # the globbing really found the packages
    assert Path(ROOT / "rn50tui" / "jobs").is_dir()
    assert not (
        ROOT / "engine" / "jobs"
    ).exists()  # the job service is a client of the engine, not part of it


@pytest.mark.parametrize("module", [m for m in modules_under("rn50tui/jobs") if not m.endswith("__main__")])
def test_job_service_never_loads_textual(module):
    loaded = loaded_after_import(module)
    assert "textual" not in loaded and "rn50tui.app" not in loaded, f"{module} loads the app's layer"


def test_job_service_and_cli_never_import_the_app_statically():
    pattern = re.compile(r"^(import|from)\s+(textual|rn50tui\.app)\b", re.MULTILINE)
    files = [
        *(ROOT / "rn50tui" / "jobs").rglob("*.py"),
        ROOT / "rn50tui" / "cli.py",
        *(ROOT / "rn50tui" / "commands").rglob("*.py"),  # every command, `devices` among them
    ]
    offenders = [str(p.relative_to(ROOT)) for p in files if pattern.search(p.read_text())]
    assert offenders == []


SQL_OWNERS = {"rn50tui/jobs/core/store.py", "rn50tui/jobs/core/schema.py"}
# Records of older versions' code, run from those versions' trees to make the committed fixtures.
OLD_CODE = {"tests/fixtures/make_jobs_v2.py"}


def test_only_the_store_runs_sql():
    call = re.compile(r"\.execute" + r"(many|script)?\(")
    venvs = {cfg.parent.name for cfg in ROOT.glob("*/pyvenv.cfg")}  # a virtualenv in the checkout, any name
    skip = {".git", ".venv", "venv", "site-packages", *venvs}
    files = [p for p in ROOT.rglob("*.py") if not skip & set(p.relative_to(ROOT).parts)]
    rel = {str(p.relative_to(ROOT)) for p in files}
    assert rel >= SQL_OWNERS  # the scan sees the tree
    offenders = [
        f"{name}:{n}"
        for name in sorted(rel - SQL_OWNERS - OLD_CODE)
        for n, line in enumerate((ROOT / name).read_text().splitlines(), 1)
        if call.search(line)
    ]
    assert offenders == [], "SQL belongs in rn50tui/jobs/core/store.py (schema.py for migrations)"


EXECUTOR_HOMES = ("rn50tui/jobs/executors/", "rn50tui/jobs/slurm/")


def test_only_the_slurm_executor_names_slurm():
    # Issue 23: the manager, the CLI and the app know executors by their declarations, never by name.
    named = re.compile(r"[\"']slurm[\"']|jobs\.slurm\b|executors\.slurm\b|import slurm\b", re.IGNORECASE)
    offenders = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in sorted((ROOT / "rn50tui").rglob("*.py"))
        if not str(p.relative_to(ROOT)).startswith(EXECUTOR_HOMES)
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if named.search(line)
    ]
    assert offenders == []


def test_nothing_of_the_slurm_watcher_imports_the_job_manager():
    # Auto-resume goes through the store and the scheduler (rn50tui/jobs/lifecycle.py).
    offenders = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "rn50tui/jobs/slurm").rglob("*.py"))
                 if "rn50tui.jobs.manager" in _imports_of(p)]  # fmt: skip
    assert offenders == []


# The layers of rn50tui/jobs/ (docs/architecture.md): each imports only its own and the ones below it.
JOB_LAYERS = {
    "rn50tui.jobs.core": ("rn50tui.jobs.core",),
    "rn50tui.jobs.policy": ("rn50tui.jobs.core", "rn50tui.jobs.policy"),
}


@pytest.mark.parametrize("layer", sorted(JOB_LAYERS))
def test_a_lower_layer_of_the_job_service_never_imports_a_higher_one(layer):
    allowed = JOB_LAYERS[layer]
    base = ROOT / layer.replace(".", "/")
    assert base.is_dir()
    offenders = [
        f"{p.relative_to(ROOT)} imports {m}"
        for p in sorted(base.rglob("*.py"))
        for m in sorted(_imports_of(p))
        if m.startswith("rn50tui.") and not m.startswith(allowed)
    ]
    assert offenders == []


def _imports_of(path: Path) -> set[str]:
    """Every rn50tui module `path` imports, anywhere in it (TYPE_CHECKING and function-level included)."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.update(f"{node.module}.{a.name}" for a in node.names)
            found.add(node.module)
    known = set(modules_under("rn50tui"))
    return {m for m in found if m in known}  # `from pkg import name`: a module only if it is one


def rn50tui_import_graph() -> dict[str, set[str]]:
    graph = {}
    for path in (ROOT / "rn50tui").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        graph[module] = _imports_of(path) - {module}
    return graph


def test_no_screen_or_widget_imports_the_app_module():
    graph = rn50tui_import_graph()
    assert "rn50tui.app.app" in graph and "rn50tui.app.screens.jobs" in graph
    offenders = [m for m, deps in graph.items() if m.startswith(("rn50tui.app.screens", "rn50tui.app.widgets"))
                 and "rn50tui.app.app" in deps]  # fmt: skip
    assert offenders == []


def test_no_import_cycle_inside_rn50tui():
    graph = rn50tui_import_graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(graph.get(module, ())):
            if state.get(dep) == 1:
                cycles.append(path[path.index(dep) :] + [dep] if dep in path else [module, dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []
