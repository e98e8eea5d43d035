"""The one timestamp format of modelfleet's logs (access log, replica logs): UTC ISO 8601 with
milliseconds and a Z, so that lines from several files sort and compare as plain strings."""

from __future__ import annotations

import re
import time

from ..domain.errors import InvalidInput

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


_second = (-1, "")   # the last whole second formatted, and its text: most calls share one


def iso_second(whole: int) -> str:
    """A whole second (UTC) as `iso_time` starts it: 2026-11-26T07:37:08."""
    global _second
    cached = _second
    if cached[0] != whole:
        cached = _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return cached[1]


def iso_time(t: float) -> str:
    return f"{iso_second(int(t))}.{int(t * 1000) % 1000:03d}Z"


def since(value: str, now: float | None = None) -> str:
    """`--since` as a timestamp to compare lines with: a duration back from now (`90s`, `10m`,
    `2h`, `1d`) or a time (`2026-11-26T07:30:00`, UTC unless it says otherwise)."""
    now = time.time() if now is None else now
    m = _DURATION.match(value.strip())
    if m:
        return iso_time(now - float(m.group(1)) * _UNITS[m.group(2)])
    from datetime import datetime, timezone
    try:
        t = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"--since {value!r}: use a duration (90s, 10m, 2h, 1d) or a time "
                           "(2026-11-26T07:30:00)") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return iso_time(t.timestamp())


def line_time(line: str) -> str | None:
    """The timestamp a log line starts with, if it has one."""
    head = line[:24]
    return head if len(head) == 24 and head[10] == "T" and head[23] == "Z" and head[:4].isdigit() else None
