"""Rolling windows of collected data and where their files live.

Azure's layout, under the workspace: `modelDataCollector/ENDPOINT/DEPLOYMENT/COLLECTION/
YYYY/MM/DD/HH[/mm]/` (the deeper levels as rolling_rate asks), one Parquet file per flush.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

ROOT = "modelDataCollector"


def window_parts(t: float, rolling_rate: str) -> tuple[str, ...]:
    d = dt.datetime.fromtimestamp(t, dt.timezone.utc)
    parts = (f"{d.year:04d}", f"{d.month:02d}", f"{d.day:02d}")
    if rolling_rate in ("hour", "minute"):
        parts += (f"{d.hour:02d}",)
    if rolling_rate == "minute":
        parts += (f"{d.minute:02d}",)
    return parts


def collection_dir(root: Path, endpoint: str, deployment: str, collection: str) -> Path:
    return root / ROOT / endpoint / deployment / collection


def window_start(parts: tuple[str, ...]) -> dt.datetime:
    nums = [int(p) for p in parts] + [0] * (5 - len(parts))
    return dt.datetime(nums[0], nums[1], nums[2], nums[3], nums[4], tzinfo=dt.timezone.utc)


def windows(collection: Path) -> list[tuple[dt.datetime, Path]]:
    """Every window directory under a collection (any depth), with its start, oldest first."""
    out = []
    if not collection.is_dir():
        return out
    for day in collection.glob("[0-9][0-9][0-9][0-9]/[0-9][0-9]/[0-9][0-9]"):
        for d in [day, *day.glob("[0-9][0-9]"), *day.glob("[0-9][0-9]/[0-9][0-9]")]:
            if any(p.suffix == ".parquet" for p in d.iterdir() if p.is_file()):
                out.append((window_start(d.relative_to(collection).parts), d))
    return sorted(out)


def files_between(collection: Path, start: dt.datetime, end: dt.datetime) -> list[Path]:
    """Parquet files of windows that start before `end` and may hold rows after `start`
    (rows are filtered by their own time when read)."""
    files = []
    for begun, d in windows(collection):
        if begun < end and begun + dt.timedelta(days=1) > start:
            files += sorted(p for p in d.iterdir() if p.suffix == ".parquet")
    return files
