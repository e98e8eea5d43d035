"""The first admin: made at a workspace's first start, so that a new server is usable at once
and nobody can sign up.

When the store holds no principal, the server creates the user `admin`, assigns it Owner at `/`
and writes its first token to the workspace's `first-admin.token` (0600); the token is printed
once, on a terminal. The launcher's token (run/server.json) acts as `admin` too: the local CLI
works with no set-up, and its rights are `admin`'s roles, never more.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from ..domain.errors import AlreadyExists
from ..files.fsutil import atomic_write
from ..store.identities import ROOT_SCOPE, IdentityStore
from .http.auth import FIRST_ADMIN

log = logging.getLogger("modelfleet.server")


def bootstrap(identities: IdentityStore, token_file: Path) -> str | None:
    """Create the first admin if there is no principal yet; its token (else None)."""
    if identities.principals():
        return None
    try:
        _, token = identities.create_principal(FIRST_ADMIN, "user", created_by="(first start)",
                                               description="the first admin, made at the first start",
                                               token_name="first-admin")
    except AlreadyExists:   # another server on the same database made it a moment ago
        return None
    identities.assign(FIRST_ADMIN, "Owner", ROOT_SCOPE, created_by="(first start)")
    atomic_write(token_file, token.encode() + b"\n", mode=0o600)
    return token


def announce(token: str, token_file: Path) -> None:
    """Once: the token itself on a terminal; otherwise (a log file) only where it is kept."""
    if sys.stderr.isatty():
        print(f"the first admin {FIRST_ADMIN!r} (Owner at /) was created; its token, shown once and kept in "
              f"{token_file} (0600):\n{token}", file=sys.stderr)
    else:
        log.info("the first admin %r (Owner at /) was created; its token is in %s (0600)", FIRST_ADMIN, token_file)
