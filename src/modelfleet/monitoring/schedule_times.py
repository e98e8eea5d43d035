"""Time arithmetic of monitors: ISO 8601 durations (`P7D`, `PT1H`) and when a trigger fires next."""

from __future__ import annotations

import datetime as dt
import re

from .. import errors

_DURATION = re.compile(r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


def duration_seconds(text: str) -> int:
    m = _DURATION.match(str(text).upper())
    if not m or text.upper() in ("P", "PT"):
        raise ValueError(f"{text!r} is not an ISO 8601 duration such as P7D, PT12H or P0D")
    w, d, h, mi, s = (int(x or 0) for x in m.groups())
    return (((w * 7 + d) * 24 + h) * 60 + mi) * 60 + s


def check_cron(expression: str) -> None:
    croniter = _croniter()
    if not croniter.is_valid(expression):
        raise ValueError(f"{expression!r} is not a cron expression (minute hour day month weekday)")


def _croniter():
    try:
        from croniter import croniter
    except ImportError:
        raise errors.InvalidInput("cron triggers need croniter: pip install 'modelfleet[monitoring]'") from None
    return croniter


def next_run(trigger, after: dt.datetime) -> dt.datetime:
    """The first time after `after` (UTC) that the trigger fires."""
    if trigger.type == "cron":
        return _croniter()(trigger.expression, after).get_next(dt.datetime)
    start = parse_time(trigger.start_time) if trigger.start_time else None
    period = dt.timedelta(seconds=_period_s(trigger))
    if start is not None and start > after:
        return start
    base = start or after
    steps = int((after - base) / period) + 1
    return base + steps * period


def _period_s(trigger) -> int:
    from .specs import FREQUENCIES
    return FREQUENCIES[trigger.frequency] * trigger.interval


def parse_time(text: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
