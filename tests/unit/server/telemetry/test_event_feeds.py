"""Each workspace's event feed holds the warnings its own work logged (hooks.WORKSPACE); the
primary's also the server's own, logged by no workspace's work."""

from __future__ import annotations

import asyncio
import logging

from modelfleet.server.telemetry.hooks import EventLog, Telemetry, working_for


def test_a_warning_goes_to_the_feed_of_the_workspace_whose_work_logged_it():
    primary, hosted = Telemetry(), Telemetry()
    root = logging.getLogger("modelfleet")
    feeds = [EventLog(primary, "default", the_servers=True), EventLog(hosted, "team-b")]
    for feed in feeds:
        root.addHandler(feed)
    log = logging.getLogger("modelfleet.test")
    try:
        with working_for("team-b"):
            log.warning("rollout of ep-b/blue failed")

            async def in_a_task():   # tasks and threads started in its work inherit it
                await asyncio.to_thread(log.warning, "from a thread of team-b")
            asyncio.run(in_a_task())
        with working_for("default"):
            log.warning("rollout of ep-a/blue failed")
        log.warning("the server's own")
        log.info("not an event")
    finally:
        for feed in feeds:
            root.removeHandler(feed)
    assert [e["message"] for e in hosted.events] == ["rollout of ep-b/blue failed", "from a thread of team-b"]
    assert [e["message"] for e in primary.events] == ["rollout of ep-a/blue failed", "the server's own"]
