"""Printing results: rich tables for people, `-o json|yaml` for scripts."""

from __future__ import annotations

import sys
from typing import Any

import orjson

FORMATS = ("table", "json", "yaml")


def _plain(data: Any) -> Any:
    if hasattr(data, "to_dict"):
        return data.to_dict()
    if isinstance(data, list):
        return [_plain(x) for x in data]
    return data


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, dict):
        return " ".join(f"{k}={x}" for k, x in v.items())
    if isinstance(v, list):
        return ", ".join(_cell(x) for x in v)
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v)


PLAIN_ABOVE = 500  # rows; rich lays out a 10,000-row table in seconds, plain text in milliseconds


def _plain_table(rows: list[dict], cols: list[str]) -> None:
    cells = [[_cell(r.get(c)) for c in cols] for r in rows]
    widths = [min(60, max(len(c), *(len(row[i]) for row in cells))) for i, c in enumerate(cols)]
    out = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip()]
    out += ["  ".join(v[:w].ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    sys.stdout.write("\n".join(out) + "\n")


def emit(data: Any, fmt: str, columns: list[str] | None = None, title: str | None = None) -> None:
    data = _plain(data)
    if fmt == "json":
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    if fmt == "yaml":
        import yaml
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False))
        return
    from rich.console import Console
    from rich.table import Table
    console = Console()
    if isinstance(data, list):
        if not data:
            console.print("[dim](none)[/dim]")
            return
        if len(data) > PLAIN_ABOVE:
            _plain_table(data, columns or list(data[0]))
            return
        cols = columns or list(data[0])
        table = Table(title=title, header_style="bold")
        for c in cols:
            table.add_column(c)
        for row in data:
            table.add_row(*(_cell(row.get(c)) for c in cols))
        console.print(table)
    elif isinstance(data, dict):
        table = Table(title=title, show_header=False, box=None)
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for k, v in data.items():
            if columns and k not in columns:
                continue
            if k == "files" and isinstance(v, list):
                v = "\n".join(f"{f['path']}  {f['size']} B  {f['sha256'][:12]}" for f in v)
            table.add_row(k, _cell(v) if not isinstance(v, str) else v)
        console.print(table)
    else:
        console.print(data)
