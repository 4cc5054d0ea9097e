"""Free space on a folder's disk: what the engine's write errors and rn50tui's store errors report.

No torch here: the job manager imports it too.
"""

from __future__ import annotations

import os
import shutil
from typing import Optional

MiB = 1 << 20


def free_bytes(folder: str | os.PathLike[str]) -> Optional[int]:
    """The bytes free on `folder`'s disk; None when it cannot be read (a folder that does not exist)."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None
