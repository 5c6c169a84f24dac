"""Plain-text tables whose columns fit their widest cell, so a long host name or an
`unreachable` role never pushes a row out of line."""
from __future__ import annotations


def format_table(headers: tuple[str, ...], rows: list[tuple], right: frozenset[int] = frozenset(),
                 indent: str = "") -> list[str]:
    """Lines of a table: cells are str()-ed, None shows as '-', columns in `right` align right;
    the last column is not padded (no trailing blanks)."""
    cells = [tuple("-" if cell is None else str(cell) for cell in row) for row in rows]
    widths = [max([len(header)] + [len(row[index]) for row in cells]) for index, header in enumerate(headers)]

    def line(row: tuple[str, ...]) -> str:
        parts = []
        for index, cell in enumerate(row):
            last = index == len(row) - 1
            if index in right:
                parts.append(cell.rjust(widths[index]))
            else:
                parts.append(cell if last else cell.ljust(widths[index]))
        return (indent + "  ".join(parts)).rstrip()
    return [line(tuple(headers))] + [line(row) for row in cells]
