"""Reading data as columns: data assets (CSV or Parquet; a file, a folder, an MLTable) and the
windows a deployment's collection wrote. Columns come back as {name: list of values}."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from ..domain.errors import InvalidInput
from ..schema.monitoring import DATA_SUFFIXES

META_COLUMNS = ("correlationid", "time")


def _read_file(path: Path):
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq
    if path.suffix == ".parquet":
        return pq.read_table(path)
    if path.suffix == ".csv":
        return pcsv.read_csv(path)
    raise InvalidInput(f"{path}: only .csv and .parquet files are read as data")


def _concat(tables):
    import pyarrow as pa
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]


def mltable_files(folder: Path) -> list[Path]:
    """The files an MLTable document names (`paths: - file: | folder: | pattern:`)."""
    from ..schema import yaml_files as documents
    doc = documents.load_one(str(folder / "MLTable"))
    out = []
    for entry in doc.get("paths") or []:
        for kind in ("file", "folder", "pattern"):
            if kind in entry:
                target = str(entry[kind]).removeprefix("./")
                if kind == "file":
                    out.append(folder / target)
                elif kind == "folder":
                    out += sorted(p for p in (folder / target).rglob("*") if p.suffix in DATA_SUFFIXES)
                else:
                    out += sorted(folder.glob(target))
    return out


def asset_files(path: Path, type_: str) -> list[Path]:
    if type_ == "uri_file":
        return [path]
    if type_ == "mltable":
        return mltable_files(path)
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in DATA_SUFFIXES and not p.name.startswith("."))


def read_files(files: list[Path], start: dt.datetime | None = None, end: dt.datetime | None = None) -> dict[str, list]:
    import pyarrow.compute as pc
    table = _concat([_read_file(f) for f in files])
    if table is None:
        return {}
    if start is not None and "time" in table.column_names:
        t = table.column("time")
        table = table.filter(pc.and_(pc.greater_equal(t, start), pc.less(t, end)))
    return {name: table.column(name).to_pylist() for name in table.column_names}
