"""Each workspace on a server has its own event feed (`/api/events`, the dashboard's): a real
server, a deployment whose init() fails in a hosted workspace and another in the primary; each
workspace's feed tells of its own failed rollout and replicas, and nothing of the other's, and so
does the hosted workspace's dashboard in a real browser (headless Chromium)."""

from __future__ import annotations

import httpx
import pytest

from .hosting import served  # noqa: F401  (a fixture)
from .test_dashboard import browser  # noqa: F401  (a fixture)
from .helpers import wait_until, write
from .test_team import _run

pytestmark = pytest.mark.slow

FAILING_SCORE_PY = """
def init():
    raise RuntimeError("this model cannot start")

def run(raw):
    return raw
"""


def _fail_a_rollout(env: dict, workspace: str, endpoint: str, code) -> None:
    _run(env, "model", "register", "-w", workspace, "--name", "m", "--version", "1", "--path", str(code / "score.py"))
    _run(env, "online-endpoint", "create", "-w", workspace, "--name", endpoint)
    _run(env, "online-deployment", "create", "-w", workspace, "--name", "bad", "--endpoint", endpoint, "--model",
         "m:1", "--code", str(code), "--scoring-script", "score.py", ok=False)


def test_a_hosted_workspace_has_its_own_event_feed(served, tmp_path, browser):
    url, token, admin = served.url, served.token, served.admin
    _run(admin, "workspace", "create", "--name", "team-b")
    code = tmp_path / "code"
    write(code / "score.py", FAILING_SCORE_PY)
    _fail_a_rollout(admin, "team-b", "ep-in-b", code)
    _fail_a_rollout(admin, "default", "ep-in-primary", code)

    def feed(prefix: str) -> list[str]:
        r = httpx.get(f"{url}{prefix}/api/events", params={"n": 1000}, timeout=30,
                      headers={"authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        return [str(e) for e in r.json()]

    def failed(events: list[str], endpoint: str) -> bool:
        return any(f"rollout of {endpoint}/bad failed" in e for e in events)

    hosted = wait_until(lambda: (lambda e: e if failed(e, "ep-in-b") else None)(feed("/workspaces/team-b")),
                        timeout=60)
    primary = wait_until(lambda: (lambda e: e if failed(e, "ep-in-primary") else None)(feed("")), timeout=60)
    assert any("ep-in-b" in e and "rollout" not in e for e in hosted)   # its replicas' state changes
    assert not any("ep-in-primary" in e for e in hosted)
    assert not any("ep-in-b" in e for e in primary)

    # its dashboard, under its prefix, reads its own API
    page = browser.new_page()
    offsite = []
    page.on("request", lambda r: r.url.startswith(f"{url}/workspaces/team-b/") or offsite.append(r.url))
    page.goto(f"{url}/workspaces/team-b/dashboard")
    page.fill("#token", token)
    page.click("#login-form button")
    page.wait_for_selector("#endpoints tbody tr[data-endpoint='ep-in-b']")
    page.wait_for_selector("#events tbody tr:has-text('ep-in-b')")
    assert page.eval_on_selector_all("#endpoints tbody tr", "rows => rows.map(r => r.dataset.endpoint)") == ["ep-in-b"]
    assert "ep-in-primary" not in page.inner_text("#events")
    assert offsite == []   # every page and call under its prefix
    page.close()
