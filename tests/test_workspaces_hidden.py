"""A workspace a server hosts tells nothing of itself to a caller without a role there, over HTTP
on a real server: each of its pages answers, status and body, as the same page of a workspace
nobody made (the names swapped), without a token, with a token the server does not know, and
with a signed-in user's token that holds no role on it. Its pages without data work under its
prefix; its data needs a token with a role there."""

from __future__ import annotations

import re

import httpx
import pytest

from .hosting import served  # noqa: F401  (a fixture)
from .test_team import _json, _run

pytestmark = pytest.mark.slow

HOSTED, NOBODYS = "team-b", "team-x"   # names of one length: the bodies compare with the names swapped
PAGES = ["/docs", "/docs/oauth2-redirect", "/openapi.json", "/dashboard", "/dashboard/", "/dashboard/dashboard.js",
         "/dashboard/nothing.js", "/nothing", "/api/health", "/api/endpoints", "/api/events", "/api/stats",
         "/api/identity", "/api/workspaces", "/metrics", "/api/models", "/v2", "/v2/health/ready",
         "/v2/models/secret-ep", "/v2/models/secret-ep/ready"]
SCORING = ["/endpoints/secret-ep/score", "/v2/models/secret-ep/infer"]


def _answer(client: httpx.Client, method: str, workspace: str, page: str, headers: dict) -> tuple:
    r = client.request(method, f"/workspaces/{workspace}{page}", headers=headers, json={"data": [[1]]})
    body = re.sub(rb'"request_id":"[^"]*"', b"", r.content.replace(workspace.encode(), b"NAME"))
    return r.status_code, r.headers.get("content-type"), r.headers.get("location", "").replace(workspace, "NAME"), body


def test_a_hosted_workspace_answers_a_caller_without_a_role_as_one_nobody_made(served):
    url, token, admin = served.url, served.token, served.admin
    _run(admin, "workspace", "create", "--name", HOSTED)
    _run(admin, "online-endpoint", "create", "-w", HOSTED, "--name", "secret-ep")
    bea = _json(admin, "user", "create", "--name", "bea")["token"]   # signed in, no role anywhere
    callers = {"no token": {}, "bea": {"authorization": f"Bearer {bea}"}}
    with httpx.Client(base_url=url, timeout=30) as c:
        for who, headers in callers.items():
            for page in PAGES:
                hosted = _answer(c, "GET", HOSTED, page, headers)
                assert hosted == _answer(c, "GET", NOBODYS, page, headers), (who, page, hosted[:3])
            for page in SCORING:   # its endpoints too: without their key, they are not there
                hosted = _answer(c, "POST", HOSTED, page, headers)
                assert hosted == _answer(c, "POST", NOBODYS, page, headers), (who, page, hosted[:3])
                assert hosted[0] == 404
            write = _answer(c, "PUT", HOSTED, "/api/endpoints/secret-ep", headers)
            assert write == _answer(c, "PUT", NOBODYS, "/api/endpoints/secret-ep", headers)
            assert write[0] == (401 if who == "no token" else 404)
        guess = {"authorization": "Bearer not-a-token"}   # counted as a failed attempt: two only
        assert _answer(c, "GET", HOSTED, "/api/health", guess) == _answer(c, "GET", NOBODYS, "/api/health", guess)

        # what answers without a token holds no data: the pages are the API's shape and the
        # dashboard's files, under the workspace's own prefix
        docs = c.get(f"/workspaces/{HOSTED}/docs")
        assert docs.status_code == 200 and f"/workspaces/{HOSTED}/openapi.json" in docs.text
        assert "secret-ep" not in c.get(f"/workspaces/{HOSTED}/openapi.json").text
        assert c.get(f"/workspaces/{HOSTED}/dashboard").headers["location"] == f"/workspaces/{HOSTED}/dashboard/"
        assert "modelfleet dashboard" in c.get(f"/workspaces/{HOSTED}/dashboard/").text
        for page in ("/metrics", "/api/events", "/api/endpoints"):
            assert c.get(f"/workspaces/{HOSTED}{page}").status_code == 401
        # its endpoint's key reaches the endpoint (it has no deployment yet)
        key = _json(admin, "online-endpoint", "get-credentials", "-w", HOSTED, "--name", "secret-ep")["primaryKey"]
        keyed = c.post(f"/workspaces/{HOSTED}/endpoints/secret-ep/score", json={"data": [[1]]},
                       headers={"authorization": f"Bearer {key}"})
        assert keyed.status_code == 503 and "has no deployment taking traffic" in keyed.text
        # with a role there, the data answers; a workspace nobody made stays 404 to everyone
        root = {"authorization": f"Bearer {token}"}
        assert c.get(f"/workspaces/{HOSTED}/metrics", headers=root).status_code == 200
        assert [e["name"] for e in c.get(f"/workspaces/{HOSTED}/api/endpoints", headers=root).json()] == ["secret-ep"]
        gone = c.get(f"/workspaces/{NOBODYS}/api/endpoints", headers=root)
        assert (gone.status_code, gone.json()["error"]["message"]) == (404, f"workspace {NOBODYS!r} not found")
        # the primary's own pages are as they were: /metrics open on loopback
        assert c.get("/metrics").status_code == 200 and c.get("/dashboard/").status_code == 200
