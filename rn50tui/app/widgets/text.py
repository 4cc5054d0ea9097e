"""Text widgets updated only when what they show changes, and laid out again only when its size does."""

from __future__ import annotations

from typing import Optional

from rich.cells import cell_len
from rich.errors import MarkupError
from rich.text import Text
from textual.widgets import Static


def set_text(widget: Static, text: str) -> bool:
    """Show `text` in `widget` unless it already does (True when it was updated). Textual's update lays
    the whole screen out again; that is only needed when the text's size on screen changes (more lines, a
    longer line in a widget as wide as its text): a detail screen laid out on every poll spent most of its
    idle CPU there."""
    if getattr(widget, "_shown_text", None) == text:
        return False
    size = _footprint(widget, text)
    layout = size is None or size != getattr(widget, "_shown_size", None)
    widget._shown_text, widget._shown_size = text, size  # type: ignore[attr-defined]
    widget.update(text, layout=layout)
    return True


def _footprint(widget: Static, text: str) -> Optional[tuple[int, ...]]:
    """The lines `text` takes in `widget` at its present width (and its widest line where the widget is as
    wide as its text); None when unknown (not laid out yet)."""
    width = widget.content_region.width
    if width <= 0:
        return None
    try:
        plain = Text.from_markup(text).plain if widget._render_markup else text
    except MarkupError:
        plain = text
    lengths = [cell_len(line) for line in plain.split("\n")]
    rows = sum(max(1, -(-n // width)) for n in lengths)
    styles = widget.styles  # no width rule: as wide as its container; no height rule: as tall as its text
    auto_width = styles.width is not None and styles.width.is_auto
    auto_height = styles.height is None or styles.height.is_auto
    return (width, rows if auto_height else 0, max(lengths) if auto_width else 0)
