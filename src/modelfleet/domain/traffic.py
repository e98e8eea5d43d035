"""Traffic rules for an endpoint's deployments (same rules as Azure ML managed endpoints)."""

from __future__ import annotations

from .errors import InvalidInput

MAX_MIRROR = 50


def parse(text: str | None, flag: str = "--traffic") -> dict[str, int]:
    """`"blue=90 green=10"` (spaces or commas; `blue:90,green:10` as older az samples write it)
    -> {"blue": 90, "green": 10}."""
    out: dict[str, int] = {}
    for part in (text or "").replace(",", " ").split():
        name, sep, value = part.partition("=") if "=" in part else part.partition(":")
        if not sep or not name:
            raise InvalidInput(f"{flag}: {part!r} is not deployment=percent")
        try:
            out[name] = int(value)
        except ValueError:
            raise InvalidInput(f"{flag}: {value!r} for {name!r} is not a whole number") from None
    return out


def check(traffic: dict[str, int], mirror: dict[str, int], deployments: set[str]) -> None:
    for name, pct in {**traffic, **mirror}.items():
        if name not in deployments:
            raise InvalidInput(f"traffic names deployment {name!r}, which does not exist on this endpoint")
        if not isinstance(pct, int) or not 0 <= pct <= 100:
            raise InvalidInput(f"traffic for {name!r} must be a whole number from 0 to 100, got {pct!r}")
    total = sum(traffic.values())
    if total not in (0, 100):
        raise InvalidInput(f"traffic percentages must sum to 0 or 100, got {total}")
    live_mirrors = {n: p for n, p in mirror.items() if p}
    if len(live_mirrors) > 1:
        raise InvalidInput("mirror traffic can go to one deployment only")
    for name, pct in live_mirrors.items():
        if pct > MAX_MIRROR:
            raise InvalidInput(f"mirror traffic to {name!r} is {pct}%; at most {MAX_MIRROR}% can be mirrored")
        if traffic.get(name, 0) > 0:
            raise InvalidInput(f"cannot mirror traffic to {name!r}: it already takes live traffic")


def clean(traffic: dict[str, int]) -> dict[str, int]:
    return {n: p for n, p in sorted(traffic.items()) if p}
