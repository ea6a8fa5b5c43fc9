"""Markdown tables as every report, leaderboard and tracker writes them: cells with a `|` escaped, so a table stays a
table (GitHub-flavoured Markdown, CommonMark's tables extension)."""

from __future__ import annotations


def escape_cell(cell: object) -> str:
    return str(cell).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table's lines: the header, the rule, one line per row."""
    line = lambda cells: "| " + " | ".join(escape_cell(c) for c in cells) + " |"  # noqa: E731
    return [line(header), "|" + "---|" * len(header), *(line(r) for r in rows)]
