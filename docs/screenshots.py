"""Take the dashboard and /docs screenshots that docs/observability.md shows (docs/img/*.png).

A throwaway workspace with three endpoints under a minute of varied load (some bad requests
among them), and a rolling update of a deployment whose init() takes a few seconds, so the
rollout panel has something to show. Needs Debian's chromium and the test extra (Playwright).

    .venv/bin/python docs/screenshots.py          # about 90 seconds
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import threading
import time
from pathlib import Path

import httpx

OUT = Path(__file__).resolve().parent / "img"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
SLOW_INIT = '''
import json, time
def init():
    time.sleep(4)
def run(raw_data):
    return {"ok": True, "rows": len(json.loads(raw_data).get("data", []))}
'''
IRIS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
WINE = [[13.2, 1.78, 2.14, 11.2, 100, 2.65, 2.76, 0.26, 1.28, 4.38, 1.05, 3.4, 1050]]


def load(url: str, key: str, body: dict, stop: threading.Event, rate: float, bad_share: float = 0.0) -> None:
    with httpx.Client(timeout=30, headers={"authorization": f"Bearer {key}"}) as c:
        while not stop.is_set():
            bad = random.random() < bad_share
            c.post(url, json={"data": [[1, 2]]} if bad else body)
            time.sleep(random.expovariate(rate))


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="modelfleet-shots-"))
    os.environ["FLEET_HOME"] = str(home)
    from playwright.sync_api import sync_playwright

    from modelfleet import Fleet
    from modelfleet.quickstart import train

    fleet = Fleet()
    for name, variant in (("iris", 1), ("iris", 2), ("wine", 1)):
        train(name, home / f"{name}-{variant}", variant=variant)
        fleet.models.register(name, home / f"{name}-{variant}", str(variant))
    code = home / "code"
    code.mkdir()
    (code / "score.py").write_text(SLOW_INIT)
    fleet.online_endpoints.create("iris-ep")
    fleet.online_deployments.create("blue", "iris-ep", "iris:1", instance_count=2)
    fleet.online_deployments.create("green", "iris-ep", "iris:2")
    fleet.online_endpoints.update("iris-ep", traffic={"blue": 80, "green": 20})
    fleet.online_endpoints.create("wine-ep")
    fleet.online_deployments.create("default", "wine-ep", "wine:1")
    fleet.online_endpoints.create("custom-ep")
    fleet.online_deployments.create("main", "custom-ep", "iris:1", instance_count=2,
                                    code_configuration={"code": str(code), "scoring_script": "score.py"})
    info = json.loads(fleet.workspace.server_file.read_text())
    keys = {n: fleet.online_endpoints.get_keys(n)["primaryKey"] for n in ("iris-ep", "wine-ep", "custom-ep")}
    uri = {n: fleet.online_endpoints.get(n)["scoring_uri"] for n in keys}
    stop = threading.Event()
    threads = [threading.Thread(target=load, args=(uri["iris-ep"], keys["iris-ep"], {"data": IRIS}, stop, 150, 0.01)),
               threading.Thread(target=load, args=(uri["iris-ep"], keys["iris-ep"], {"data": IRIS}, stop, 100)),
               threading.Thread(target=load, args=(uri["wine-ep"], keys["wine-ep"], {"data": WINE}, stop, 60, 0.03)),
               threading.Thread(target=load, args=(uri["custom-ep"], keys["custom-ep"], {"data": IRIS}, stop, 30))]
    for t in threads:
        t.start()
    OUT.mkdir(exist_ok=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{info['url']}/dashboard/")
            page.screenshot(path=str(OUT / "dashboard-login.png"))
            page.fill("#token", info["token"])
            page.click("#login-form button")
            page.wait_for_selector("#endpoints tbody tr[data-endpoint='custom-ep']")
            time.sleep(45)  # a screenshot, not a test: let the charts fill
            page.screenshot(path=str(OUT / "dashboard.png"), full_page=True)
            fleet.online_deployments.update("main", "custom-ep", environment_variables={"VERSION": "2"}, wait=False)
            page.wait_for_selector("#rollouts .badge.Updating", timeout=30000)
            page.wait_for_selector("#rollouts .badge.starting", timeout=30000)
            page.locator("#rollouts-card").scroll_into_view_if_needed()
            page.screenshot(path=str(OUT / "dashboard-rollout.png"), clip={"x": 0, "y": 0, "width": 1400, "height": 1000})
            page.select_option("#focus", "iris-ep")
            page.wait_for_timeout(2500)
            page.screenshot(path=str(OUT / "dashboard-endpoint.png"), clip={"x": 0, "y": 0, "width": 1400, "height": 520})
            page.goto(f"{info['url']}/docs")
            page.wait_for_selector(".opblock-summary-path")
            page.screenshot(path=str(OUT / "docs.png"), clip={"x": 0, "y": 0, "width": 1400, "height": 1000})
            browser.close()
    finally:
        stop.set()
        for t in threads:
            t.join()
        fleet.server.stop()
        fleet.close()


if __name__ == "__main__":
    main()
