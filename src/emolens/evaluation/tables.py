"""Comparison tables (Markdown, CSV, JSON) of evaluated approaches: baselines, studies.

Each row is one approach's `summary()`; the Markdown, CSV and JSON files all derive from the
same rows.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from emolens.errors import DataError


def _cell(v: Any, fmt: str | None) -> str:
    if v is None:
        return "n/a"
    if fmt == "pct":
        return f"{100 * v:.2f}%"
    if fmt == "s":
        return f"{v:,.1f}"
    return str(v)


def markdown_table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str | None]]) -> str:
    """rows -> a Markdown table. columns: (key, header, format) with format 'pct', 's' or None."""
    lines = ["| " + " | ".join(h for _, h, _ in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r.get(k), f) for k, _, f in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_table(out_dir: Path, stem: str, rows: list[dict[str, Any]], markdown: str, extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write STEM.md, STEM.csv and STEM.json into `out_dir`; refuses to replace any of them."""
    paths = {ext: out_dir / f"{stem}.{ext}" for ext in ("md", "csv", "json")}
    for p in paths.values():
        if p.exists():
            raise DataError(f"{p}: already exists; tables are never overwritten")
    buf = io.StringIO()
    keys = list(dict.fromkeys(k for r in rows for k in r))
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    paths["csv"].write_text(buf.getvalue(), encoding="utf-8")
    paths["json"].write_text(json.dumps({**(extra or {}), "rows": rows}, indent=2) + "\n", encoding="utf-8")
    paths["md"].write_text(markdown, encoding="utf-8")
    return paths
