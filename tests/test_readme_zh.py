"""README.zh.md is a translation of README.md: its code blocks are README.md's, byte for byte and in the
same order, and it has the same sections. A change to either README that is not made to both fails here."""

from __future__ import annotations

import re

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()
README_ZH = (ROOT / "README.zh.md").read_text()

FENCE = re.compile(r"^```[^\n]*\n.*?^```$", re.MULTILINE | re.DOTALL)


def fenced_blocks(markdown: str) -> list[str]:
    """Every fenced block, info string and closing fence included."""
    return FENCE.findall(markdown)


def headings(markdown: str, level: int) -> list[str]:
    """Headings of exactly `level`, outside fenced blocks."""
    prefix = "#" * level + " "
    return [line for line in FENCE.sub("", markdown).splitlines() if line.startswith(prefix)]


def test_code_blocks_are_readme_md_s_exactly():
    english = fenced_blocks(README)
    assert english, "README.md has no fenced code blocks"
    assert fenced_blocks(README_ZH) == english


def test_same_number_of_sections():
    assert len(headings(README_ZH, 2)) == len(headings(README, 2))
    assert len(headings(README_ZH, 3)) == len(headings(README, 3))


def test_the_two_readmes_link_to_each_other():
    assert "[中文说明](README.zh.md)" in README
    assert "[English](README.md)" in README_ZH
