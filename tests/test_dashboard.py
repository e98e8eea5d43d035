"""The dashboard in a real browser: headless Chromium (Debian's package, driven by Playwright)
against a real server with replicas. `make test` installs Debian's chromium package.

With FLEET_SCREENSHOTS=<dir> set, the test also saves the screenshots docs/observability.md shows.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import httpx
import orjson
import pytest
from playwright.sync_api import sync_playwright
from prometheus_client.parser import text_string_to_metric_families

from modelfleet.backends.ray import cluster as ray_cluster

from .conftest import IRIS_ROWS
from .helpers import RAY_GROUP, Load, compute_row, wait_until

pytestmark = pytest.mark.slow  # every test here starts a server and replicas

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


@pytest.fixture
def fleet_with_traffic(fleet, models_dir):
    fleet.models.register("iris", models_dir / "iris", "1")
    fleet.models.register("iris", models_dir / "iris_v2", "2")
    fleet.models.register("wine", models_dir / "wine", "1")
    fleet.online_endpoints.create("iris-ep")
    fleet.online_deployments.create("blue", "iris-ep", "iris:1")
    fleet.online_deployments.create("green", "iris-ep", "iris:2")
    fleet.online_endpoints.update("iris-ep", traffic={"blue": 80, "green": 20})
    fleet.online_endpoints.create("wine-ep")
    fleet.online_deployments.create("default", "wine-ep", "wine:1")
    return fleet


def _shot(page, name: str) -> None:
    folder = os.environ.get("FLEET_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def test_dashboard_login_endpoints_and_a_chart_that_moves_under_load(fleet_with_traffic, browser):
    fleet = fleet_with_traffic
    info = orjson.loads(fleet.workspace.server_file.read_bytes())
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    offsite = []
    page.on("request", lambda r: r.url.startswith(info["url"]) or offsite.append(r.url))
    page.goto(f"{info['url']}/dashboard")

    # a wrong token is refused, the right one lets us in
    page.fill("#token", "not-the-token")
    page.click("#login-form button")
    page.wait_for_selector("#login-error:has-text('not accepted')")
    assert page.is_hidden("#app")
    page.fill("#token", info["token"])
    page.click("#login-form button")
    page.wait_for_selector("#endpoints tbody tr[data-endpoint='wine-ep']")
    assert page.is_hidden("#login") and page.is_visible("#app")
    rows = page.eval_on_selector_all("#endpoints tbody tr", "rows => rows.map(r => r.dataset.endpoint)")
    assert rows == ["iris-ep", "wine-ep"]
    assert "blue=80 green=20" in page.inner_text("#endpoints")
    page.wait_for_selector("#deployments tbody tr:has-text('green')")
    deployments = page.inner_text("#deployments")
    assert "iris:2" in deployments and "wine:1" in deployments and "1 ready" in deployments
    page.wait_for_selector("#models tbody tr:has-text('wine')")

    # under load, the requests-per-second chart leaves zero and its pixels change
    page.wait_for_function("() => document.querySelector('#chart-rps').dataset.max !== undefined")
    assert float(page.get_attribute("#chart-rps", "data-max")) == 0
    before = page.evaluate("() => document.querySelector('#chart-rps').toDataURL()")
    keys = {name: fleet.online_endpoints.get_keys(name)["primaryKey"] for name in ("iris-ep", "wine-ep")}
    uri = fleet.online_endpoints.get("iris-ep")["scoring_uri"]
    wine = fleet.online_endpoints.get("wine-ep")["scoring_uri"]
    wine_row = json.dumps({"data": [[13.2, 1.78, 2.14, 11.2, 100, 2.65, 2.76, 0.26, 1.28, 4.38, 1.05, 3.4, 1050]]})
    with Load(uri, keys["iris-ep"], json.dumps({"data": IRIS_ROWS}).encode(), threads=2) as iris_load, \
            Load(wine, keys["wine-ep"], wine_row.encode(), threads=1) as wine_load:
        page.wait_for_function("() => Number(document.querySelector('#chart-rps').dataset.max) > 0", timeout=30000)
        page.wait_for_function("() => Number(document.querySelector('#chart-latency').dataset.max) > 0", timeout=30000)
        page.wait_for_selector("#requests tbody tr:has-text('iris-ep')")
        wait_until(lambda: page.evaluate("() => document.querySelector('#chart-rps').toDataURL()") != before)
        _shot(page, "dashboard.png")
        page.select_option("#focus", "iris-ep")
        page.wait_for_function("() => document.querySelector('#chart-scope').textContent.includes('iris-ep')")
        page.wait_for_selector("#legend span:has-text('green')")
        _shot(page, "dashboard-endpoint.png")
    assert not iris_load.result.failed and not wine_load.result.failed
    assert float(page.get_attribute("#chart-rps", "data-max")) > 0
    assert offsite == []  # every asset and call went to the server itself
    page.close()


KINDS = ("dedicated-ep", "shared-ep", "ray-ep")   # one deployment "main" each: the same replica ids
TO_ZERO = {"type": "target_utilization", "min_instances": 0, "max_instances": 1, "idle_timeout": 2}


@pytest.fixture
def three_kinds(fleet, models_dir):
    """The same model in a process of its own, in a shared worker (scaled to zero when idle) and
    as a Ray actor on a compute of its own on 127.0.0.1."""
    fleet.computes.create("raydev", num_cpus=2)
    compute = compute_row(fleet, "raydev")
    try:
        fleet.models.register("iris", models_dir / "iris", "1")
        for endpoint in KINDS:
            fleet.online_endpoints.create(endpoint, compute="raydev" if endpoint == "ray-ep" else "local")
        fleet.online_deployments.create("main", "dedicated-ep", "iris:1", placement="dedicated")
        fleet.online_deployments.create("main", "shared-ep", "iris:1", placement="shared", scale_settings=TO_ZERO)
        fleet.online_deployments.create("main", "ray-ep", "iris:1")
        yield fleet
    finally:
        fleet.server.stop()
        ray_cluster.stop_local(compute["temp_dir"])


def _on_dashboard(page) -> dict:
    """Each deployment row's (ready, wanted), as drawn."""
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('#deployments tr[data-deployment]')]
        .map((tr) => { const c = tr.querySelector('td.replicas');
                       return [tr.dataset.deployment.split('/')[0], [Number(c.dataset.ready), Number(c.dataset.wanted)]]; }))""")


def _in_show(fleet) -> dict:
    shown = {ep: fleet.online_deployments.get("main", ep) for ep in KINDS}
    return {ep: [d["ready_replicas"], d["wanted_replicas"]] for ep, d in shown.items()}


def _in_metrics(fleet) -> dict:
    text = httpx.get(f"{orjson.loads(fleet.workspace.server_file.read_bytes())['url']}/metrics", timeout=30).text
    samples = [s for fam in text_string_to_metric_families(text) for s in fam.samples]
    ready = {s.labels["endpoint"]: s.value for s in samples
             if s.name == "modelfleet_replicas" and s.labels["state"] == "ready"}
    wanted = {s.labels["endpoint"]: s.value for s in samples if s.name == "modelfleet_replicas_wanted"}
    return {ep: [ready[ep], wanted[ep]] for ep in KINDS}


def _row(endpoint: str) -> str:
    return f"#deployments tr[data-deployment='{endpoint}/main'] td.replicas"


@RAY_GROUP
def test_replicas_read_ready_of_wanted_under_load_as_show_and_metrics_say(three_kinds, browser):
    fleet = three_kinds
    info = orjson.loads(fleet.workspace.server_file.read_bytes())
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{info['url']}/dashboard#token={info['token']}")
    body = json.dumps({"data": IRIS_ROWS}).encode()

    def load(endpoint: str) -> Load:
        return Load(fleet.online_endpoints.get(endpoint)["scoring_uri"],
                    fleet.online_endpoints.get_keys(endpoint)["primaryKey"], body, threads=2)

    with load("ray-ep") as ray_load:
        with load("shared-ep") as shared_load:
            page.wait_for_function("() => document.querySelector('[data-testid=tile-replicas] .v')?.textContent"
                                   " === '3 / 3'", timeout=30000)
            for endpoint in KINDS:
                page.wait_for_selector(f"{_row(endpoint)}:has-text('1 ready of 1')")
            # busy is told besides ready, never instead: a loaded row says both
            page.wait_for_selector(f"{_row('shared-ep')} .badge.busy", timeout=30000)
            page.wait_for_selector(f"{_row('ray-ep')} .badge.busy", timeout=30000)
            one_of_one = {ep: [1, 1] for ep in KINDS}
            assert _on_dashboard(page) == _in_show(fleet) == _in_metrics(fleet) == one_of_one
            assert page.inner_text("[data-testid=tile-replicas] .v") == "3 / 3"
            _shot(page, "dashboard-replicas.png")
        # the shared deployment's load stops: idle past its timeout, it scales to zero
        page.wait_for_function("() => document.querySelector('[data-testid=tile-replicas] .v').textContent"
                               " === '2 / 2'", timeout=60000)
        page.wait_for_selector(f"{_row('shared-ep')}:has-text('0 ready of 0')")
        at_zero = {**one_of_one, "shared-ep": [0, 0]}
        assert _on_dashboard(page) == _in_show(fleet) == _in_metrics(fleet) == at_zero
        assert fleet.online_deployments.get("main", "shared-ep")["health"] == "Idle"
    assert not ray_load.result.failed and not shared_load.result.failed
    page.close()
