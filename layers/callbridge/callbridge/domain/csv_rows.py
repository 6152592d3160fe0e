"""The rows of a CSV body with the line each starts on, the one rule for naming a bad row by its line."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def rows_with_lines(reader: Any) -> Iterator[tuple[int, list[str]]]:
    """The non-blank rows still to come from `reader` (a `csv.reader`), each with the line of the body it starts
    on, as an editor numbers them: blank lines and the rows read before count, and a quoted cell may span lines."""
    start = reader.line_num + 1
    for row in reader:
        line, start = start, reader.line_num + 1
        if any(cell.strip() for cell in row):
            yield line, row
