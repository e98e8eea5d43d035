"""Shared fixtures: a private FLEET_HOME per test, trained models, servers stopped by pid."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import orjson
import pytest
from hypothesis import settings

from modelfleet.cli.quickstart import train

# No deadline per example (Hypothesis's default is 200 ms): a timing assertion, and on `make test`'s
# two workers a quick example can wait that long for a core the other worker's servers hold.
settings.register_profile("modelfleet", deadline=None)
settings.load_profile("modelfleet")


def _stop_servers(home: Path) -> None:
    """Stop every server of a workspace under `home` or registered in its config.json with a path
    of its own (SIGTERM, then SIGKILL), and their replicas."""
    folders = [home]
    with contextlib.suppress(Exception):
        folders += [Path(w["path"]) for w in orjson.loads((home / "config.json").read_bytes())["workspaces"].values()]
    run_files = [f for folder in folders for pattern in ("**/run/server.json", "**/run/joined/*.json")
                 for f in folder.glob(pattern)]   # joined: more servers of one workspace (--join)
    for server_file in run_files:
        with contextlib.suppress(Exception):
            pid = orjson.loads(server_file.read_bytes())["pid"]
            children = _children(pid)
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.05)
            for p in [pid, *children]:
                with contextlib.suppress(ProcessLookupError):
                    if _alive(p):
                        os.kill(p, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
            return False
    return True


def _children(pid: int) -> list[int]:
    import psutil
    with contextlib.suppress(psutil.Error):
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    return []


@contextlib.contextmanager
def fleet_in(home: Path):
    """A Fleet on its own FLEET_HOME for a module-scoped fixture; stops its servers afterwards."""
    from modelfleet import Fleet
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLEET_HOME", str(home))
        mp.delenv("FLEET_WORKSPACE", raising=False)
        f = Fleet()
        try:
            yield f
        finally:
            f.close()
            _stop_servers(home)


@contextlib.contextmanager
def endpoints_deleted(fleet):
    """A test on a module's shared workspace (each test makes endpoints of its own names): the
    endpoints are deleted after it, so the next test starts among no replicas of others."""
    try:
        yield fleet
    finally:
        for endpoint in fleet.online_endpoints.list():
            fleet.online_endpoints.delete(endpoint["name"])


# -- two test processes (`make test`: pytest-xdist, -n 2 --dist loadgroup) ------------------------

@pytest.hookimpl(tryfirst=True)   # before xdist's own hook, which reads the groups
def pytest_collection_modifyitems(items):
    """A module's tests run on one worker, in their order, so that a module-scoped fixture (a
    workspace, server or cluster the module shares) starts once, as in a serial run. A test that
    names its group runs with that group instead: `RAY_GROUP` (tests/helpers.py)."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))


@pytest.hookimpl(optionalhook=True)   # pytest-xdist's hook: unknown to a run without it
def pytest_xdist_node_collection_finished(node, ids):
    """pytest-xdist's worker tells the scheduler each test's group by a suffix of its node id; a
    pytest that ignores that (9.2: pytest-xdist issue 1386) would spread every group over both
    workers without a word. Stop there instead."""
    if node.config.getoption("dist") == "loadgroup" and ids and "@" not in ids[0]:
        raise pytest.UsageError(f"pytest {pytest.__version__} drops pytest-xdist's test groups "
                                "(--dist loadgroup): install the pytest that constraints.txt pins")


@pytest.fixture(scope="session", autouse=True)
def shared_uv_cache(tmp_path_factory):
    """One uv package cache for the run (every test has its own FLEET_HOME): environments
    download each package once. Under pytest-xdist the workers share it, in the folder above
    their own (uv's cache is made for concurrent readers and writers). A FLEET_UV_CACHE_DIR set
    by the developer is kept across runs."""
    given = os.environ.get("FLEET_UV_CACHE_DIR")
    if given is None:
        if os.environ.get("PYTEST_XDIST_WORKER"):
            shared = tmp_path_factory.getbasetemp().parent / "uv-cache"
            shared.mkdir(exist_ok=True)
            os.environ["FLEET_UV_CACHE_DIR"] = str(shared)
        else:
            os.environ["FLEET_UV_CACHE_DIR"] = str(tmp_path_factory.mktemp("uv-cache"))
    yield Path(os.environ["FLEET_UV_CACHE_DIR"])
    if given is None:
        os.environ.pop("FLEET_UV_CACHE_DIR", None)


@pytest.fixture
def fleet_home(tmp_path, monkeypatch, request, database):
    home = tmp_path / "home"
    monkeypatch.setenv("FLEET_HOME", str(home))
    monkeypatch.delenv("FLEET_WORKSPACE", raising=False)
    if database == "postgresql":
        monkeypatch.setenv("FLEET_DATABASE_URL", request.getfixturevalue("postgres_server").create_database())
    else:
        monkeypatch.delenv("FLEET_DATABASE_URL", raising=False)
    yield home
    started_a_server = any(home.glob("**/run/server.lock"))
    _stop_servers(home)
    # keeps `-m "not slow"` the fast layer: a test that starts a server must say so
    if started_a_server and request.node.get_closest_marker("slow") is None:
        pytest.fail(f"{request.node.nodeid} starts a server: mark it @pytest.mark.slow")


@pytest.fixture
def inprocess(tmp_path, monkeypatch, request, database):
    """The real control API in this process on a temporary workspace (tests/inprocess.py), its
    metadata in SQLite or, under `pytest.mark.databases`, PostgreSQL too."""
    from .inprocess import InProcessServer
    monkeypatch.delenv("FLEET_SERVER", raising=False)
    monkeypatch.delenv("FLEET_TOKEN", raising=False)
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "client-home"))   # never written: the client opens no file
    url = request.getfixturevalue("postgres_server").create_database() if database == "postgresql" else None
    server = InProcessServer(tmp_path, url)
    yield server
    server.close()


@pytest.fixture
def api_cli(inprocess, monkeypatch):
    """`run_cli` (tests/helpers.py) against `inprocess`: the real CLI and API, no process."""
    from modelfleet.cli.common import Ctx

    def fleet(ctx):
        if ctx._fleet is None:
            ctx._fleet = inprocess.fleet(notice=ctx.notice)
        return ctx._fleet
    monkeypatch.setattr(Ctx, "fleet", property(fleet))
    return inprocess


@pytest.fixture
def api_fleet(inprocess):
    """A Fleet whose server is `inprocess`: client and API together, no process, no port."""
    f = inprocess.fleet()
    yield f
    f.close()


@pytest.fixture
def fleet(fleet_home):
    from modelfleet import Fleet
    f = Fleet()
    yield f
    f.close()
    _stop_servers(fleet_home)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """Real model files trained once per session: iris (v1 and v2), wine, breast_cancer."""
    root = tmp_path_factory.mktemp("models")
    train("iris", root / "iris")
    train("iris", root / "iris_v2", variant=2)
    train("wine", root / "wine")
    train("breast_cancer", root / "breast_cancer")
    return root


IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


# -- the metadata database: SQLite (the workspace's file) or PostgreSQL ----------------------------

@pytest.fixture(scope="session")
def postgres_server():
    """One real PostgreSQL server for the session, started on first need (tests/postgres.py)."""
    from .postgres import PostgresServer
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def database(request) -> str:
    """Which database a test's workspace keeps its metadata in: `sqlite` (its file, the default)
    or `postgresql` (a database of its own on the session's server). A module marked
    `pytest.mark.databases` runs each test on both."""
    return getattr(request, "param", "sqlite")


def pytest_generate_tests(metafunc):
    if metafunc.definition.get_closest_marker("databases") and "database" in metafunc.fixturenames:
        # PostgreSQL is a server process the session starts: those runs belong to the slow layer
        metafunc.parametrize("database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)],
                             indirect=True)
