"""API tokens: random, shown once, kept only as a hash.

A token is `mft_` and 43 URL-safe characters (256 random bits). The store keeps its SHA-256:
with that much entropy a slow password hash adds nothing, and a lookup by hash needs no scan.
`mft_` lets secret scanners (and people) recognise a leaked token.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets

PREFIX = "mft_"


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_token(value: str) -> bool:
    """Whether a bearer value is worth a lookup (an endpoint key or garbage is not)."""
    return value.startswith(PREFIX) and 40 <= len(value) <= 64


_LIFETIME = re.compile(r"^(\d+)([mhd])$")
_LIFETIME_UNITS = {"m": 60, "h": 3600, "d": 86400}
MAX_LIFETIME = dt.timedelta(days=3650)


def lifetime(text: str) -> dt.timedelta:
    """`--expires-in`: minutes, hours or days (`90m`, `12h`, `30d`), at most ten years."""
    m = _LIFETIME.match(text.strip())
    if m is None or int(m.group(1)) == 0:
        from .errors import InvalidInput
        raise InvalidInput(f"--expires-in {text!r}: use a whole number of minutes, hours or days (90m, 12h, 30d)")
    return min(MAX_LIFETIME, dt.timedelta(seconds=int(m.group(1)) * _LIFETIME_UNITS[m.group(2)]))
