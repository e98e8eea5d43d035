import pytest

from tests.inprocess import InProcessServer


@pytest.fixture
def api(tmp_path, monkeypatch):
    monkeypatch.delenv("FLEET_SERVER", raising=False)
    monkeypatch.delenv("FLEET_TOKEN", raising=False)
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "client-home"))   # never written: the client opens no file
    server = InProcessServer(tmp_path)
    yield server
    server.close()


@pytest.fixture
def fleet(api):
    f = api.fleet()
    yield f
    f.close()
