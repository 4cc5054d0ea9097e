"""A DataTable that draws its body rows itself: one line per row, fixed column widths, cells of plain text.

Textual draws a cell through Rich's layout machinery (Padding, Styled, a Text wrapped and joined: ~0.2 ms a
cell, 600 cells a screen) and keys its render caches by one update counter, so a sort, a filter or a page
redrew a whole screen of cells from scratch (30-50 ms). Here a cell is a few segments whose styles are
combined once per look (stripe, cursor, hover, the cell's own style) and given the cell's place (the mouse
meta) from a cache; anything else (the header, a cell with spans, another Textual) goes the DataTable's
way, and a test keeps the two equal."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Optional

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.coordinate import Coordinate
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey

# Textual's DataTable render caches (cell, row, row renderables, line); see FastTable._write_cells
_ROW_CACHES = ("_cell_render_cache", "_row_render_cache", "_row_renderable_cache", "_line_cache")
_CACHE_MAX = 20_000  # entries of each of our caches before it is emptied (a long scroll)


class Cell(Text):
    """A table cell that sorts by its value, not by how it reads."""

    def __init__(self, text: str, sort_key: Any, style: str = "", justify: Optional[str] = None) -> None:
        super().__init__(text, style=style, justify=justify)  # type: ignore[arg-type]
        self.sort_key = sort_key


class FastTable(DataTable):
    """A DataTable of one-line rows of Cells, drawn fast; `_write_cells` updates cells in place."""

    def __init__(self, **kwargs: Any) -> None:
        # before DataTable's __init__: its reactive watchers clear the caches
        self._fast_cells: dict[tuple[Any, ...], tuple[Cell, list[list[Segment]]]] = {}  # see _render_cell
        self._looks: dict[tuple[Any, ...], Optional[tuple[Style, Style]]] = {}  # styles, without the place
        self._places: dict[tuple[int, int], Style] = {}  # (row, column) → its mouse meta
        self._row_styles: dict[tuple[Any, ...], Style] = {}
        super().__init__(**kwargs)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._forget_looks()

    def _clear_caches(self) -> None:
        super()._clear_caches()
        self._forget_looks()

    def _forget_looks(self) -> None:
        for cache in (self._fast_cells, self._looks, self._row_styles):
            cache.clear()

    def _write_cells(self, dirty: dict[Any, dict[str, Cell]]) -> None:
        """Changed cells into the table, forgetting only their rows' renderings. Textual's update_cell
        counts every change as the whole table's (its render caches are keyed by one update counter), so
        one running job's progress re-rendered every visible cell on every poll."""
        if not dirty:
            return
        caches = [getattr(self, name, None) for name in _ROW_CACHES]
        if any(cache is None for cache in caches) or not isinstance(getattr(self, "_data", None), dict):
            for jid, changed in dirty.items():  # another Textual: its own way
                for key, cell in changed.items():
                    self.update_cell(str(jid), key, cell)
            return
        cell_cache, row_cache, renderables, lines = caches
        keys = {RowKey(str(jid)) for jid in dirty}
        indexes = {self._row_locations.get(k) for k in keys}
        for jid, changed in dirty.items():
            row = self._data[RowKey(str(jid))]
            for key, cell in changed.items():
                row[ColumnKey(key)] = cell
        for cache in (cell_cache, row_cache):  # keyed by (row key, …)
            for stale in [k for k in cache.keys() if k[0] in keys]:  # noqa: SIM118 (an LRUCache)
                cache.discard(stale)
        for stale in [k for k in renderables.keys() if k[1] in indexes]:  # noqa: SIM118 (count, row index)
            renderables.discard(stale)
        lines.clear()  # one entry per screen line: cheap to remake from the row cache
        for index in indexes:
            if index is not None:
                self.refresh_row(index)

    def _update_dimensions(self, new_rows: Iterable[Any]) -> None:
        """Every column has a fixed width and every row one line: new rows need no measuring (Textual
        measures each new cell with Rich, ~1 ms a row)."""
        super()._update_dimensions(())

    def _render_line_in_row(self, row_key: RowKey, line_no: int, base_style: Style, cursor_location: Coordinate,
                            hover_location: Coordinate) -> Any:  # fmt: skip
        """A body row as Textual draws it, without its per-row style look-ups (three CSS rich_style
        builds a row). Rows with labels, fixed rows or columns, and other cursors go Textual's way."""
        row_index = self._row_locations.get(row_key)
        if (row_index is None or row_key is self._header_row_key or self.fixed_rows or self.fixed_columns
                or self.cursor_type != "row" or (self._labelled_row_exists and self.show_row_labels)
                or not isinstance(getattr(self, "_data", None), dict)):  # fmt: skip
            return super()._render_line_in_row(row_key, line_no, base_style, cursor_location, hover_location)
        cursor = cursor_location.row == row_index
        hover = hover_location.row == row_index
        # whether the cursor or the mouse is on this row, not where they are: a cursor move redraws two rows
        cache_key = (row_key, line_no, base_style, cursor, hover, self.cursor_type, self.show_cursor,
                     self._show_hover_cursor, self._update_count, self._pseudo_class_state)  # fmt: skip
        hit = self._row_render_cache.get(cache_key)
        if hit is not None:
            return hit
        look = (row_index % 2, self.zebra_stripes, base_style, self._pseudo_class_state)
        row_style = self._row_styles.get(look)
        if row_style is None:
            row_style = self._row_styles[look] = self._get_row_style(row_index, base_style)
        cells = self._data.get(row_key, {})
        state = (self._show_hover_cursor, self._pseudo_class_state, self.show_cursor, self.cell_padding)
        row: list[list[Segment]] = []
        used = self._row_label_column_width
        for column_index, column in enumerate(self.ordered_columns):
            width = 2 * state[3] + (column.content_width if column.auto_width else column.width)
            used += width
            lines = self._fast_cell(cells.get(column.key), row_key, column.key, row_index, column_index,
                                    row_style, width, cursor, hover, state)  # fmt: skip
            if lines is None:
                lines = self._render_cell(row_index, column_index, row_style, width, cursor, hover)
            row.append(lines[line_no])
        remaining = max(0, self.size.width - used)
        if remaining:  # the row's style out to the table's edge, as Textual draws it
            extend, _ = self._get_styles_to_render_cell(False, False, False, hover, cursor, self.show_cursor,
                                                        self._show_hover_cursor, False, False)  # fmt: skip
            extend = (
                row_style + extend + Style.from_meta({"row": row_index, "column": 0, "out_of_bounds": True})
            )
            row.append([Segment(" " * remaining, extend)])
        pair = ([], row)
        self._row_render_cache[cache_key] = pair
        return pair

    def _render_cell(self, row_index: int, column_index: int, base_style: Style, width: int,
                     cursor: bool = False, hover: bool = False) -> Any:  # fmt: skip
        """One body cell as Textual draws it, cached by the cell itself (not the table's update counter)."""
        data = getattr(self, "_data", None)
        if row_index < 0 or column_index < 0 or not isinstance(data, dict):
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        cell = data.get(row_key, {}).get(column_key)
        state = (self._show_hover_cursor, self._pseudo_class_state, self.show_cursor, self.cell_padding)
        lines = self._fast_cell(cell, row_key, column_key, row_index, column_index, base_style, width, cursor,
                                hover, state)  # fmt: skip
        if lines is None:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        return lines

    def _fast_cell(self, cell: Any, row_key: RowKey, column_key: ColumnKey, row_index: int, column_index: int,
                   base_style: Style, width: int, cursor: bool, hover: bool,
                   state: tuple[Any, ...]) -> Optional[list[list[Segment]]]:  # fmt: skip
        """A one-line Cell's lines, from the cache when drawn before at this place and look; None for
        anything else (Textual's way). `state`: hover cursor shown, pseudo-classes, cursor shown, padding."""
        if type(cell) is not Cell or cell.spans or "\n" in cell.plain:
            return None
        row = self.rows.get(row_key)
        if row is None or row.height != 1:
            return None
        key = (row_key, column_key, row_index, column_index, base_style, width, cursor, hover, state)
        hit = self._fast_cells.get(key)
        if hit is not None and hit[0] is cell:
            return hit[1]
        styles = self._cell_styles(row_index, column_index, base_style, cell, cursor, hover)
        if styles is None:  # styles with meta of their own: Textual's way
            return None
        plain_style, text_style = styles
        pad = state[3]
        inner = max(0, width - 2 * pad)
        plain = cell.plain.rstrip() if cell.justify == "right" else cell.plain
        if cell_len(plain) > inner:
            plain = set_cell_size(plain, inner)
        fill = " " * (inner - cell_len(plain))
        edge = " " * pad
        right = cell.justify == "right"
        if text_style is plain_style:  # one segment: Textual's simplified line holds the same
            line = [
                Segment(f"{edge}{fill}{plain}{edge}" if right else f"{edge}{plain}{fill}{edge}", plain_style)
            ]
        elif right:
            line = [Segment(edge + fill, plain_style), Segment(plain, text_style), Segment(edge, plain_style)]
        else:
            line = [Segment(edge, plain_style), Segment(plain, text_style), Segment(fill + edge, plain_style)]
        if len(self._fast_cells) > _CACHE_MAX:
            self._fast_cells.clear()
        self._fast_cells[key] = (cell, [line])
        return [line]

    def _cell_styles(self, row_index: int, column_index: int, base_style: Style, cell: Cell, cursor: bool,
                     hover: bool) -> Optional[tuple[Style, Style]]:  # fmt: skip
        """(padding's style, text's style) of a cell, with its place's mouse meta; None where a style
        holds meta of its own (then the order Textual adds them in matters)."""
        fixed = row_index < self.fixed_rows or column_index < self.fixed_columns
        component, post = self._get_styles_to_render_cell(False, False, fixed, hover, cursor, self.show_cursor,
                                                          self._show_hover_cursor,
                                                          self.cursor_foreground_priority == "css",
                                                          self.cursor_background_priority == "css")  # fmt: skip
        look_key = (base_style, component, post, cell.style)
        look = self._looks.get(look_key, False)
        if look is False:
            own = self.app.console.get_style(cell.style) if isinstance(cell.style, str) else cell.style
            parts = (base_style, component, post, own)
            if any(part is not None and part._meta for part in parts):
                look = None
            else:
                plain_look = base_style + component + post if post else base_style + component
                text_look = base_style + component + own + post if post else base_style + component + own
                look = (plain_look, plain_look if text_look == plain_look else text_look)
            if len(self._looks) > _CACHE_MAX:
                self._looks.clear()
            self._looks[look_key] = look
        if look is None:
            return None
        place = self._places.get((row_index, column_index))
        if place is None:
            if len(self._places) > _CACHE_MAX:
                self._places.clear()
            place = self._places[(row_index, column_index)] = Style.from_meta(
                {"row": row_index, "column": column_index}
            )
        plain_style = look[0] + place
        return plain_style, plain_style if look[1] is look[0] else look[1] + place
