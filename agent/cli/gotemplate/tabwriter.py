"""Go's text/tabwriter as docker's `table` formats use it (minwidth 10, padding 3, spaces).

A cell is text ended by a tab; the text after a line's last tab is not a cell and is not
padded. A column is as wide as its widest cell plus the padding, and at least minwidth, over a
block of consecutive lines that all have that column; a line with fewer cells ends the block,
so a short line does not widen (or get widened by) the lines around it.
"""
from __future__ import annotations

MIN_WIDTH = 10
PADDING = 3


def align(text: str, min_width: int = MIN_WIDTH, padding: int = PADDING) -> str:
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []
    _format(lines, 0, len(lines), [], min_width, padding, out)
    return "\n".join(out)


def _format(lines: list[list[str]], first: int, last: int, widths: list[int], min_width: int,
            padding: int, out: list[str]) -> None:
    """Go's Writer.format: lines first..last, with the widths of the columns left of `column`."""
    column = len(widths)
    line0 = first
    this = first
    while this < last:
        if column >= len(lines[this]) - 1:
            this += 1
            continue
        _write(lines, line0, this, widths, out)    # lines before the block
        line0 = this
        width = min_width
        while this < last and column < len(lines[this]) - 1:
            width = max(width, len(lines[this][column]) + padding)
            this += 1
        _format(lines, line0, this, widths + [width], min_width, padding, out)
        line0 = this
    _write(lines, line0, last, widths, out)


def _write(lines: list[list[str]], first: int, last: int, widths: list[int], out: list[str]) -> None:
    for cells in lines[first:last]:
        parts = [cell.ljust(widths[index]) if index < len(widths) else cell for index, cell in enumerate(cells)]
        out.append("".join(parts))
