"""Dataclass fields that carry their command-line flag, and the argparse parser derived from them.

A field states its default, type, flag names, help and choices once (`flag(...)`); `add_fields` turns
the fields into arguments, so a setting and its flag cannot drift apart. No torch import here.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Optional

FLAG = "flag"  # the key of a field's metadata that holds its Flag


@dataclass(frozen=True)
class Flag:
    """How one field appears on the command line: its names (none: a positional) and argparse options."""

    names: tuple[str, ...]
    options: dict[str, Any]
    also: tuple[Flag, ...] = ()  # more flags that write the same field another way (`--no-amp`)


def flag(default: Any, *names: str, also: tuple[Flag, ...] = (), **options: Any) -> Any:
    """A field with `default` and its flag `names`; `options` are argparse's (help, choices, metavar…).

    The type comes from the field's annotation (int, float, else a string); a bool field is a switch:
    `store_true` when it defaults to False, `store_false` (a `--no-…` name) when it defaults to True.
    """
    return dataclasses.field(default=default, metadata={FLAG: Flag(names, options, also)})


def also(*names: str, **options: Any) -> Flag:
    """Another flag of the same field, with its own action (`--pyamp`, `--no-amp` beside `--amp`)."""
    return Flag(names, options)


class DefaultsHelp(argparse.HelpFormatter):
    """`--help` names each flag's default, unless it has none (None, off) or its text already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        silent = action.default in (None, False, argparse.SUPPRESS) or not action.option_strings
        if silent or "default" in text:
            return text
        return f"{text} (default: %(default)s)"


def add_fields(p: argparse.ArgumentParser, cls: type, names: Optional[set[str]] = None, **helps: str) -> None:
    """Add the flags of `cls`'s fields (only `names`, when given) in field order; `helps` overrides a
    field's help text by field name (a tool that reads the same setting for another purpose)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if names is not None and f.name not in names:
            continue
        spec = f.metadata[FLAG]
        main = dict(spec.options, help=helps.get(f.name, spec.options.get("help")))
        p.add_argument(*(spec.names or (f.name,)), **_main_options(f, hints[f.name], spec.names, main))
        for other in spec.also:  # argparse's own default for these: the first flag's default wins
            p.add_argument(*other.names, dest=f.name, **other.options)


def _main_options(f: dataclasses.Field, hint: Any, names: tuple[str, ...], options: dict) -> dict:
    out = dict(options, default=f.default)
    if names:  # a positional's dest is its name already
        out["dest"] = f.name
    if hint is bool:
        out.setdefault("action", "store_false" if f.default else "store_true")
    elif _scalar(hint) is not None:
        out["type"] = _scalar(hint)
    return out


def _scalar(hint: Any) -> Optional[type]:
    """int or float for an int/float field (Optional or not); None for a string."""
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    return args[0] if len(args) == 1 and args[0] in (int, float) else None
