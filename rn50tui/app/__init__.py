"""The Textual app: `Rn50App` (app.py), its screens and widgets, and the client and view models they read.

Imports textual; only `rn50tui` (no arguments) and `rn50tui serve` load it, so the CLI stays fast.
"""
