"""The key bar: Textual's Footer, rebuilt only when the keys it shows change."""

from __future__ import annotations

from typing import Any, Optional

from textual.screen import Screen
from textual.widgets import Footer


def shown_keys(screen: Screen) -> tuple[tuple[Any, ...], ...]:
    """The keys a footer shows for `screen` now: key, action, label, whether enabled, tooltip."""
    return tuple(
        (binding.key, binding.action, binding.description, enabled, tooltip)
        for _node, binding, enabled, tooltip in screen.active_bindings.values()
        if binding.show
    )


class KeysFooter(Footer):
    """Textual's Footer rebuilds its keys (a dozen widgets, styled anew: ~10 ms) whenever the bindings may
    have changed — on every focus move, e.g. into the filter box and back. This one rebuilds only when the
    keys shown differ."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._drawn: Optional[tuple[tuple[Any, ...], ...]] = None  # the keys the last rebuild showed

    def bindings_changed(self, screen: Screen) -> None:
        keys = shown_keys(screen)
        if keys == self._drawn:
            return
        super().bindings_changed(screen)
        if screen.app.app_focus and self.is_attached and screen is self.screen:  # it did rebuild
            self._drawn = keys
