"""`rn50tui serve`: the app in a browser tab (textual-serve), behind a per-start token."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import Any

from rn50tui.commands.common import CliError, db_path


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register `serve` on the CLI's subparsers."""
    sv = sub.add_parser("serve", parents=[common], help="serve the app to a web browser (textual-serve)",
                        description="Serve the terminal app on http://HOST:PORT; each browser tab runs its own "
                                    "copy on the same job store.")  # fmt: skip
    sv.add_argument("--host", default="localhost", help="interface to listen on (default localhost)")
    sv.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    sv.add_argument("--allow-remote", action="store_true",
                    help="needed to listen beyond loopback: anyone with the printed URL (it holds the token) "
                    "can then run jobs as you")  # fmt: skip
    sv.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """The app in a browser: textual-serve starts one `rn50tui` per browser tab, all on the same store."""
    import getpass
    import importlib.util

    from rn50tui import serve

    if importlib.util.find_spec("textual_serve") is None:
        raise CliError("serving needs textual-serve: pip install textual-serve")
    if not serve.is_loopback(args.host):
        if not args.allow_remote:
            raise CliError(f"--host {args.host} lets other machines reach the app, which can submit, cancel and "
                           "delete jobs: add --allow-remote to mean it (a token will be required)")  # fmt: skip
        print(serve.REMOTE_WARNING.format(host=args.host, port=args.port, user=getpass.getuser()), flush=True)
    app = f"{shlex.quote(sys.executable)} -m rn50tui --db {shlex.quote(os.path.abspath(db_path(args)))}"
    serve.serve(app, args.host, args.port, serve.new_token())
    return 0
