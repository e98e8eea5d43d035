"""Datastore secrets encrypted at rest with a workspace key (cryptography's Fernet).

The key is a file of its own (0600) beside the database, never in it: a copy of the database
alone (a backup, a bug report) holds no usable secret. The key is created once; two processes
creating it at the same moment agree on one (the second link fails and it reads the first's).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from ..domain.errors import IntegrityError, StorageError


class SecretBox:
    def __init__(self, key_file: Path):
        self.key_file = Path(key_file)
        self._fernet = None

    def _key(self) -> bytes:
        from cryptography.fernet import Fernet
        try:
            return self._read()
        except FileNotFoundError:
            pass
        try:
            self.key_file.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".key.", dir=self.key_file.parent)
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, Fernet.generate_key())
                os.fsync(fd)
                os.close(fd)
                with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
                    os.link(tmp, self.key_file)
            finally:
                os.unlink(tmp)
            return self._read()
        except OSError as e:
            raise StorageError(f"cannot create the datastore key {self.key_file}: {e.strerror or e}") from e

    def _read(self) -> bytes:
        mode = self.key_file.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise IntegrityError(f"datastore key {self.key_file} is readable by others "
                                 f"(mode {stat.S_IMODE(mode):o}); run: chmod 600 {self.key_file}")
        return self.key_file.read_bytes().strip()

    def fernet(self):
        if self._fernet is None:
            from cryptography.fernet import Fernet
            self._fernet = Fernet(self._key())
        return self._fernet

    def encrypt(self, secret: str) -> str:
        return self.fernet().encrypt(secret.encode()).decode()

    def decrypt(self, token: str) -> str:
        from cryptography.fernet import InvalidToken
        try:
            return self.fernet().decrypt(token.encode()).decode()
        except InvalidToken:
            raise IntegrityError(f"a stored datastore secret cannot be decrypted with {self.key_file} "
                                 f"(the key file was replaced?); update the datastore with its credentials "
                                 f"again") from None
