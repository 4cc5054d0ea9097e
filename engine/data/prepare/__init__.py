"""ImageNet in: the archives people download (official or Kaggle) turned into the recipe's layout, and a
checker for any dataset in that layout.

``sources`` detects and reads SRC, ``devkit`` reads meta.mat and the val ground truth, ``write`` writes
images and class folders atomically, ``run`` drives a prepare, ``manifest`` its lists and manifest,
``check`` the checker. The CLI is ``rn50tui data prepare|check``.
"""

from __future__ import annotations

from engine.data.prepare.errors import PrepareError

__all__ = ["PrepareError"]
