"""API tokens: random, shown once, kept only as a hash.

A token is `mft_` and 43 URL-safe characters (256 random bits). The store keeps its SHA-256:
with that much entropy a slow password hash adds nothing, and a lookup by hash needs no scan.
`mft_` lets secret scanners (and people) recognise a leaked token.
"""

from __future__ import annotations

import hashlib
import secrets

PREFIX = "mft_"


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_token(value: str) -> bool:
    """Whether a bearer value is worth a lookup (an endpoint key or garbage is not)."""
    return value.startswith(PREFIX) and 40 <= len(value) <= 64
