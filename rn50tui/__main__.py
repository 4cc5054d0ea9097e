"""`python -m rn50tui`: the same as the `rn50tui` command."""

import sys

from rn50tui.cli import main

sys.exit(main())
