"""CLI commands that are a unit each: the parser beside its handler (`rn50tui/cli.py` registers them)."""
