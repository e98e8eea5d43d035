"""A real server for tests of the workspaces it hosts, and a client of it that speaks only HTTP
(FLEET_SERVER + FLEET_TOKEN, the first admin's token): import `served` into a test module."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from .conftest import _stop_servers
from .test_team import _env, _json, _run


@dataclass(frozen=True)
class Served:
    owner: dict    # the environment of the server's owner, on its machine (server start|stop)
    url: str
    token: str     # the first admin's: it lasts across restarts
    admin: dict    # the environment of a client that has only the URL and that token


@pytest.fixture
def served(fleet_home, tmp_path):
    owner = _env(fleet_home)
    try:
        _run(owner, "server", "start")
        url = _json(owner, "server", "status")["url"]
        token = (fleet_home / "workspaces" / "default" / "first-admin.token").read_text().strip()
        yield Served(owner, url, token, _env(tmp_path / "admin", FLEET_SERVER=url, FLEET_TOKEN=token))
    finally:
        _stop_servers(fleet_home)
