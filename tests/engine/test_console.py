"""The engine's own warnings print as one plain line; other libraries' keep Python's form."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import engine_env


def test_an_engine_warning_is_one_line_without_its_source_and_a_library_warning_keeps_its_form(tmp_path):
    script = (
        "import warnings\n"
        "from engine.console import plain_warnings\n"
        "from engine.data.loaders import _warn_once\n"
        "plain_warnings()\n"
        "_warn_once('/data/x.JPEG', '/data/x.JPEG: truncated')\n"
        "warnings.warn('from elsewhere', UserWarning)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], env=engine_env(), cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    lines = out.stderr.strip().splitlines()
    assert lines[0] == "warning: skipping unreadable image /data/x.JPEG: truncated", out.stderr
    assert "BadImageWarning" not in out.stderr and "_warn_once" not in out.stderr
    assert "UserWarning: from elsewhere" in out.stderr  # with its file and line, as Python prints it
