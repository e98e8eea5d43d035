"""Printing results the way `az` does: `--query` (JMESPath) first, then `-o json|jsonc|yaml|yamlc|
table|tsv|none`. Tables are for people; the other formats are for scripts, and follow az's rules
(tsv: one line per item, dict values in key order, nested lists as their length, nested dicts empty).
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from typing import Any

import orjson

from ..domain.errors import InvalidInput

FORMATS = ("json", "jsonc", "yaml", "yamlc", "table", "tsv", "none")


def plain(data: Any) -> Any:
    if hasattr(data, "to_dict"):
        return data.to_dict()
    if isinstance(data, list):
        return [plain(x) for x in data]
    return data


def query(data: Any, expression: str) -> Any:
    """Apply a JMESPath expression as az does: objects it builds keep the order written."""
    import jmespath
    from jmespath.exceptions import JMESPathError
    try:
        compiled = jmespath.compile(expression)
    except (JMESPathError, KeyError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InvalidInput(f"--query {expression!r} is not a valid JMESPath expression: {reason}") from None
    try:
        return compiled.search(data, jmespath.Options(dict_cls=OrderedDict))
    except JMESPathError as e:
        raise InvalidInput(f"--query {expression!r}: {str(e).splitlines()[0]}") from None


# -- tsv ---------------------------------------------------------------------------------------

def _tsv_cell(v: Any) -> str:
    if isinstance(v, list):
        return str(len(v))
    if isinstance(v, dict):
        return ""  # keeps the columns aligned when some rows hold a dict and others nothing
    return v if isinstance(v, str) else str(v)


def _tsv_row(item: Any) -> str:
    if isinstance(item, OrderedDict):  # built by --query: the order the user wrote
        values = list(item.values())
    elif isinstance(item, dict):
        values = [v for _, v in sorted(item.items())]
    elif isinstance(item, list):
        values = item
    elif isinstance(item, bool):
        return str(item).lower()
    else:
        return _tsv_cell(item)
    return "\t".join(_tsv_cell(v) for v in values)


def tsv(data: Any) -> str:
    rows = data if isinstance(data, list) else [data]
    return "".join(_tsv_row(r) + "\n" for r in rows)


# -- table -------------------------------------------------------------------------------------

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


def _table(data: Any, columns: list[str] | None, title: str | None) -> None:
    from rich.console import Console
    from rich.table import Table
    console = Console()
    if isinstance(data, list):
        if not data:
            console.print("[dim](none)[/dim]")
            return
        if not all(isinstance(r, dict) for r in data):  # e.g. --query "[].name"
            data = [{"Result": r} for r in data]
        cols = columns or list(dict.fromkeys(k for r in data for k in r))
        if len(data) > PLAIN_ABOVE:
            _plain_table(data, cols)
            return
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
        console.print(_cell(data), markup=False, highlight=False)


def _json(data: Any) -> str:
    return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode() + "\n"


def emit(data: Any, fmt: str, columns: list[str] | None = None, title: str | None = None,
         expression: str | None = None) -> None:
    """Print `data` in `fmt`; with `expression`, print what the query selects (az's --query)."""
    data = plain(data)
    if expression:
        data = query(data, expression)
        columns = None  # the query decides the shape
    if data is None or fmt == "none":  # az prints nothing for a null result
        return
    colour = sys.stdout.isatty()
    if fmt == "json" or (fmt == "jsonc" and not colour):
        sys.stdout.write(_json(data))
    elif fmt == "jsonc":
        from rich.console import Console
        Console().print_json(_json(data))
    elif fmt in ("yaml", "yamlc"):
        import yaml
        text = yaml.safe_dump(orjson.loads(_json(data)), sort_keys=False, allow_unicode=True)
        if fmt == "yamlc" and colour:
            from rich.console import Console
            from rich.syntax import Syntax
            Console().print(Syntax(text, "yaml", background_color="default"))
        else:
            sys.stdout.write(text)
    elif fmt == "tsv":
        sys.stdout.write(tsv(data))
    else:
        _table(data, columns, title)
