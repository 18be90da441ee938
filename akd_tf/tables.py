"""Plain-text tables for the CLI (one formatter, used by every command)."""

from __future__ import annotations

from typing import Sequence


def format_table(rows: Sequence[dict], columns: Sequence[str], right_aligned: Sequence[str] = ()) -> str:
    """Render ``rows`` (dicts) under ``columns`` with two-space gaps; numbers align right when listed."""
    cells = [[str(row.get(col, "")) for col in columns] for row in rows]
    widths = [max([len(col)] + [len(r[i]) for r in cells]) for i, col in enumerate(columns)]

    def line(values):
        out = [v.rjust(w) if col in right_aligned else v.ljust(w) for v, w, col in zip(values, widths, columns)]
        return "  ".join(out).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells])
