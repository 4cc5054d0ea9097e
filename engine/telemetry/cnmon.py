"""MLU telemetry through Cambricon's `cnmon` tool: parsers for its outputs and a sampler that runs it.

Column positions differ between driver generations, so both parsers work by pattern (see
tests/fixtures/cnmon/SOURCES.md). Any value may be `N/A` or masked (`xxxxx`): that is None.
The sampler never runs `cnmon info -j`: that writes ./cnmon_info.json wherever it is run.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Optional

from engine.telemetry.stats import CardStats, ProcessInfo, TelemetryUnavailable, select

KIND = "mlu"
ENV_CNMON = "RN50TUI_CNMON"
ENV_VISIBLE = "MLU_VISIBLE_DEVICES"
DEFAULT_TIMEOUT_S = 5.0

# What cnmon prints for a value it does not know or hides.
_UNKNOWN = r"(?:N/?A|[xX]{2,}|-+|Unknown)"
_INT = rf"(\d+|{_UNKNOWN})"
_NUM = rf"(\d+(?:\.\d+)?|{_UNKNOWN})"

_CARD_ROW = re.compile(r"^\|\s*(\d+)\s+(/|\d+|-)\s+\S")
_PROCESS_ROW = re.compile(
    rf"^\|\s*(?P<card>\d+)\s+(?:(?:/|\d+|-)\s+)?(?P<pid>\d+)\s+(?P<cmd>.*?)\s*{_INT}\s*MiB\s*\|?\s*$"
)
_UTIL = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s*%")
_TEMP = re.compile(r"(?<![\w.:/-])(\d+(?:\.\d+)?)\s?C\b")
_POWER = re.compile(rf"{_NUM}\s*(?:W\s*)?/\s*{_NUM}\s*W\b")
_MEMORY = re.compile(rf"{_INT}\s*(?:MiB\s*)?/\s*{_INT}\s*MiB")
_BUS_ID = re.compile(r"\b[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-9A-Fa-f]\b")
_VERSION = re.compile(r"^v?\d+(?:\.\d+)+$")
_HEADER_DRIVER = re.compile(r"Driver\s+(v?\d+(?:\.\d+)+)")
# Columns the common fields already carry; the rest (Ecc-Error, Compute-Mode, ...) go to extra["columns"].
_SHOWN_ELSEWHERE = {"Card", "Name", "Firmware", "Driver", "Bus-Id", "Util"}
_HEADER_CNMON = re.compile(r"CNMON\s+(v?\d+(?:\.\d+)+)")


def _number(text: Optional[str]) -> Optional[float]:
    """The first number in `text`; None for N/A, masked or missing values."""
    if _known(text) is None:
        return None
    match = re.search(r"-?\d+(?:\.\d+)?", text)
    return float(match.group()) if match else None


def _int(text: Optional[str]) -> Optional[int]:
    value = _number(text)
    return None if value is None else int(value)


def _known(token: Optional[str]) -> Optional[str]:
    """`token`, or None when cnmon printed N/A or a mask."""
    if token is None or not token.strip() or re.fullmatch(_UNKNOWN, token.strip()):
        return None
    return token.strip()


def _cells(row: str) -> list[str]:
    """The `|`-separated cells of a table row."""
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


# ---------------------------------------------------------------------------- default table


def parse_table(text: str) -> list[CardStats]:
    """Parse the default `cnmon` table (no arguments) into one CardStats per card, processes attached."""
    lines = text.splitlines()
    cut = next((i for i, line in enumerate(lines) if "Processes:" in line), len(lines))
    device_lines, process_lines = lines[:cut], lines[cut:]
    header = _header_rows(device_lines)
    preamble = "\n".join(device_lines[:8])
    cards = [_parse_card(rows, header, preamble) for rows in _card_rows(device_lines)]
    by_index = {card.index: card for card in cards}
    for card_index, process in _parse_processes(process_lines):
        if card_index in by_index:
            by_index[card_index].processes.append(process)
    return cards


def _card_rows(lines: list[str]) -> list[list[str]]:
    """Each card's rows: the row that starts with its index, and the `|` row below it, if any."""
    groups: list[list[str]] = []
    for i, line in enumerate(lines):
        if not _CARD_ROW.match(line):
            continue
        rows = [line]
        below = lines[i + 1] if i + 1 < len(lines) else ""
        if below.startswith("|") and not _CARD_ROW.match(below) and "=" not in below:
            rows.append(below)
        groups.append(rows)
    return groups


def _header_rows(lines: list[str]) -> list[str]:
    """The `|` rows right above the `|====` line: the column names, one row per card row."""
    for i, line in enumerate(lines):
        if line.startswith("|="):
            rows = []
            for previous in reversed(lines[:i]):
                if not previous.startswith("|"):
                    break
                rows.insert(0, previous)
            return rows
    return []


def _header_fields(header: list[str], rows: list[str]) -> dict[str, Optional[str]]:
    """Name → value for every cell whose words pair one to one with its header's words."""
    fields: dict[str, Optional[str]] = {}
    for header_row, row in zip(header, rows):
        for names, values in zip(_cells(header_row), _cells(row)):
            names_split, values_split = names.split(), values.split()
            if len(names_split) == len(values_split):
                fields.update({n: _known(v) for n, v in zip(names_split, values_split)})
    return fields


def _parse_card(rows: list[str], header: list[str], preamble: str) -> CardStats:
    first, second = rows[0], rows[1] if len(rows) > 1 else ""
    index = int(_CARD_ROW.match(first).group(1))
    name, firmware = _name_and_firmware(first)
    card = CardStats(kind=KIND, index=index, name=name)
    util = _UTIL.search(first)
    card.util_percent = float(util.group(1)) if util else None
    temp = _TEMP.search(second)
    card.temp_c = float(temp.group(1)) if temp else None
    power = _POWER.search(second)
    card.power_w, card.power_cap_w = (
        (_number(power.group(1)), _number(power.group(2))) if power else (None, None)
    )
    memories = _MEMORY.findall(second)
    if memories:
        card.mem_used_mib, card.mem_total_mib = _int(memories[0][0]), _int(memories[0][1])
    bus = _BUS_ID.search(first + second)
    card.bus_id = bus.group() if bus else None
    card.extra = _card_extra(rows, header, preamble, firmware, memories[1:])
    return card


def _name_and_firmware(first_row: str) -> tuple[Optional[str], Optional[str]]:
    """From the first cell (`0  /  MLU370-X8  v1.1.6`): the name, and the firmware when printed last."""
    words = _cells(first_row)[0].split()[2:]
    firmware = words.pop() if len(words) > 1 else None
    return _known(" ".join(words)) if words else None, _known(firmware) if firmware else None


def _card_extra(
    rows: list[str], header: list[str], preamble: str, firmware: Optional[str], more_memory: list
) -> dict:
    """What the table says beyond the common fields: firmware, driver, fan, virtual memory, columns."""
    second = rows[1] if len(rows) > 1 else ""
    fan = _UTIL.search(second)
    fields = _header_fields(header, rows)
    driver = _HEADER_DRIVER.search(preamble)
    cnmon = _HEADER_CNMON.search(preamble)
    extra: dict = {
        "firmware": firmware,
        "driver": driver.group(1) if driver else fields.get("Driver"),
        "cnmon_version": cnmon.group(1) if cnmon else None,
        "fan_percent": float(fan.group(1)) if fan else None,
        "columns": {k: v for k, v in fields.items() if k not in _SHOWN_ELSEWHERE},
    }
    if more_memory:
        # The older layout's third column: virtual memory (vMemory-Usage).
        extra["vmem_used_mib"], extra["vmem_total_mib"] = _int(more_memory[0][0]), _int(more_memory[0][1])
    return extra


def _parse_processes(lines: list[str]) -> list[tuple[int, ProcessInfo]]:
    """(card, process) per row of the Processes block: `|  <card>  /  <pid>  <command>  <mem> MiB |`."""
    found = []
    for line in lines:
        match = _PROCESS_ROW.match(line)
        if match:
            process = ProcessInfo(
                pid=int(match["pid"]), mem_used_mib=_int(match.group(4)), command=match["cmd"] or None
            )
            found.append((int(match["card"]), process))
    return found


# ---------------------------------------------------------------------------- cnmon info


_INFO_CARD = re.compile(r"^\s*Card\b[^:\d]*:?\s*(\d+)\s*$", re.IGNORECASE)
_INFO_LINE = re.compile(r"^(\s*)([^:]*?)\s*(?::\s*(.*?))?\s*$")


@dataclass
class _InfoEntry:
    indent: int
    key: str
    value: Optional[str]  # None: the line opens a section
    path: str  # enclosing sections, outermost first, joined by "/"


def parse_info(text: str) -> list[CardStats]:
    """Parse `cnmon info` (a `key : value` list per card, nested by indentation) into CardStats."""
    blocks: list[tuple[int, list[str]]] = []
    for line in text.splitlines():
        card_match = _INFO_CARD.match(line)
        if card_match:
            blocks.append((int(card_match.group(1)), []))
        elif blocks:
            blocks[-1][1].append(line)
    return [_card_from_info(index, _info_entries(lines)) for index, lines in blocks]


def _info_entries(lines: list[str]) -> list[_InfoEntry]:
    """One entry per non-blank line; a line without a value opens a section for the deeper lines below."""
    entries: list[_InfoEntry] = []
    for line in lines:
        match = _INFO_LINE.match(line)
        if not match or not match.group(2):
            continue
        indent = len(match.group(1).expandtabs())
        parent = next((e for e in reversed(entries) if e.value is None and e.indent < indent), None)
        path = f"{parent.path}/{parent.key}" if parent else ""
        entries.append(_InfoEntry(indent, match.group(2), match.group(3) or None, path))
    return entries


def _find(entries: list[_InfoEntry], section: str, *keys: str) -> Optional[str]:
    """The first value whose key is one of `keys` inside a section whose path contains `section`."""
    for entry in entries:
        if entry.value is not None and section in entry.path.lower() and entry.key.lower() in keys:
            return entry.value
    return None


def _card_from_info(index: int, entries: list[_InfoEntry]) -> CardStats:
    bus = next((m.group() for e in entries if e.value and (m := _BUS_ID.search(e.value))), None)
    return CardStats(
        kind=KIND,
        index=index,
        name=_known(_find(entries, "", "product name")),
        util_percent=_number(_find(entries, "utilization", "mlu average", "average")),
        mem_used_mib=_int(_find(entries, "physical memory", "used")),
        mem_total_mib=_int(_find(entries, "physical memory", "total")),
        # The chip sensor when there is one, as NVML reports the GPU die; the board sensor otherwise.
        temp_c=_number(_find(entries, "temperature", "chip") or _find(entries, "temperature", "board")),
        power_w=_number(_find(entries, "power", "usage", "power usage")),
        power_cap_w=_number(_find(entries, "power", "cap", "power cap")),
        bus_id=bus,
        extra={
            "firmware": _known(_find(entries, "", "firmware", "mcu")),
            "driver": _known(_find(entries, "", "driver")),
            "fan_percent": _number(_find(entries, "", "fan", "fan speed")),
        },
    )


# ---------------------------------------------------------------------------- sampler


def visible_indices(value: Optional[str]) -> Optional[list[int]]:
    """Physical cards named by an `MLU_VISIBLE_DEVICES` value, in logical order; None when unset.

    Like the CUDA variable it mirrors, the list ends at the first entry that is not a card number.
    """
    if value is None:
        return None
    indices: list[int] = []
    for token in value.split(","):
        token = token.strip()
        if not token.isdigit():
            break
        if int(token) not in indices:
            indices.append(int(token))
    return indices


def find_cnmon(path: Optional[str] = None, env: Optional[Mapping[str, str]] = None) -> str:
    """The cnmon executable: `path`, else $RN50TUI_CNMON, else `cnmon` on PATH; or TelemetryUnavailable."""
    env = os.environ if env is None else env
    chosen = path or env.get(ENV_CNMON)
    if chosen:
        found = shutil.which(chosen, path=env.get("PATH")) if os.sep not in chosen else chosen
        if found and os.path.isfile(found) and os.access(found, os.X_OK):
            return found
        origin = "--cnmon" if path else ENV_CNMON
        raise TelemetryUnavailable(f"cnmon not found at {chosen} ({origin})")
    found = shutil.which("cnmon", path=env.get("PATH"))
    if not found:
        raise TelemetryUnavailable("cnmon not on PATH")
    return found


def run_cnmon(executable: str, args: Sequence[str] = (), timeout: float = DEFAULT_TIMEOUT_S) -> str:
    """cnmon's stdout; TelemetryUnavailable when it fails, hangs past `timeout` or cannot start."""
    try:
        # Own session, so a timeout kills whatever cnmon started too, not just cnmon.
        proc = subprocess.Popen(
            [executable, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as exc:
        raise TelemetryUnavailable(f"cnmon could not start: {exc.strerror or exc}") from exc
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        _kill_group(proc)
        raise TelemetryUnavailable(f"cnmon timed out after {timeout:g} s") from exc
    if proc.returncode != 0:
        first = (err or out).decode(errors="replace").strip().splitlines()[:1]
        detail = f": {first[0]}" if first else ""
        raise TelemetryUnavailable(f"cnmon exited with status {proc.returncode}{detail}")
    return out.decode(errors="replace")


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):  # it may have ended on its own meanwhile
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


class CnmonSampler:
    """Samples MLU cards by running `cnmon` once per sample. Blocking: call it off the UI thread."""

    kind = KIND

    def __init__(
        self,
        cnmon: Optional[str] = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        env: Optional[Mapping[str, str]] = None,
    ) -> None:
        self.env = dict(os.environ if env is None else env)
        self.executable = find_cnmon(cnmon, self.env)
        self.timeout = timeout

    def sample(self, indices: Optional[Sequence[int]] = None) -> list[CardStats]:
        """Every physical card, or those with the given physical indices (in that order)."""
        cards = parse_table(run_cnmon(self.executable, timeout=self.timeout))
        return select(cards, indices)

    def sample_visible(self, visible: Optional[str] = None) -> list[CardStats]:
        """The cards a process with this `MLU_VISIBLE_DEVICES` sees (default: ours), in its logical order."""
        value = visible if visible is not None else self.env.get(ENV_VISIBLE)
        return self.sample(visible_indices(value))

    def close(self) -> None:
        """Nothing to release: each sample is its own process."""
