"""Servers this client has logged in to (`fleet login`), like az's accounts.

$FLEET_HOME/accounts.json (0600) holds, per server URL, the token, the principal it belongs to,
the workspace that server holds, and the CA bundle to trust (copied under $FLEET_HOME/ca/, so the
login outlives the file it was given as); one account is current. Which server a client talks to:

    FLEET_SERVER (+ FLEET_TOKEN)  >  the current account  >  the local workspace's own server

FLEET_TOKEN alone replaces the current account's token (a pipeline's own). TLS trust: the
account's CA bundle, else REQUESTS_CA_BUNDLE or SSL_CERT_FILE, else the system's CAs.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from ..domain.errors import InvalidInput, NotFound
from ..files.fsutil import atomic_write, file_lock
from ..schema.workspace import fleet_home


@dataclass(frozen=True)
class Account:
    server: str
    token: str
    user: str = ""
    workspace: str = ""   # where commands go without -w: the server's primary at login, or `fleet workspace set`
    ca_bundle: str | None = None

    def shown(self, current: bool = False) -> dict:
        """Everything but the token."""
        return {"server": self.server, "user": self.user, "workspace": self.workspace,
                "ca_bundle": self.ca_bundle, "current": current}


def normalize(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")) or len(url.split("://", 1)[1]) == 0:
        raise InvalidInput(f"--server {url!r}: give the server's URL, https://HOST:PORT")
    return url


NO_LOGIN = {"current": None, "accounts": {}}


class Accounts:
    def __init__(self, home: Path | None = None):
        self.home = home or fleet_home()
        self.file = self.home / "accounts.json"

    def _read(self) -> dict:
        """The logins; none when the file is missing (a client that never logged in reads no file)."""
        if not self.file.exists():
            return {**NO_LOGIN, "accounts": {}}
        try:
            return orjson.loads(self.file.read_bytes())
        except (orjson.JSONDecodeError, OSError) as e:
            raise InvalidInput(f"{self.file}: unreadable ({e}); remove it and log in again") from None

    def _write(self, data: dict) -> None:
        atomic_write(self.file, orjson.dumps(data, option=orjson.OPT_INDENT_2), mode=0o600)

    def current(self) -> Account | None:
        data = self._read()
        found = data["accounts"].get(data.get("current") or "")
        return Account(**found) if found else None

    def list(self) -> list[dict]:
        data = self._read()
        return [Account(**a).shown(url == data.get("current")) for url, a in sorted(data["accounts"].items())]

    def keep_ca(self, ca_bundle: str) -> str:
        """A copy of the CA bundle under $FLEET_HOME/ca/ (named by its sha256); its path."""
        try:
            pem = Path(ca_bundle).read_bytes()
        except OSError as e:
            raise InvalidInput(f"--ca-bundle {ca_bundle!r}: {e.strerror or e}") from None
        kept = self.home / "ca" / f"{hashlib.sha256(pem).hexdigest()[:16]}.pem"
        atomic_write(kept, pem, mode=0o600)
        return str(kept)

    def save(self, account: Account) -> None:
        """Add (or replace) the account for its server and make it current."""
        self.home.mkdir(parents=True, exist_ok=True)
        with file_lock(self.home / ".accounts.lock"):
            data = self._read()
            data["accounts"][account.server] = asdict(account)
            data["current"] = account.server
            self._write(data)

    def set_current(self, server: str) -> Account:
        with file_lock(self.home / ".accounts.lock"):
            data = self._read()
            url = normalize(server)
            if url not in data["accounts"]:
                raise NotFound(f"not logged in to {url}: fleet login --server {url}")
            data["current"] = url
            self._write(data)
            return Account(**data["accounts"][url])

    def remove(self, server: str | None) -> list[str]:
        """Forget one server's account (None: the current one); the servers forgotten."""
        if not self.file.exists():
            return []
        with file_lock(self.home / ".accounts.lock"):
            data = self._read()
            url = normalize(server) if server else data.get("current")
            if url is None or url not in data["accounts"]:
                return []
            del data["accounts"][url]
            if data.get("current") == url:
                data["current"] = next(iter(sorted(data["accounts"])), None)
            self._write(data)
            return [url]
