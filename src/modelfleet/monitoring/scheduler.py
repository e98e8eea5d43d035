"""Monitors in the server: run the due ones, keep each run's results, and alert on a breach.

A loop on the server's event loop looks for due schedules every `TICK_S` and runs them one after
the other in a worker thread (reading Parquet and computing histograms never runs on the loop the
gateway shares). A run that breaches a threshold writes one warning line to the server log and
POSTs one JSON document to each of the monitor's webhooks; a run that fails is kept with its
error, and the schedule goes on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import TYPE_CHECKING, Callable

from ..domain.errors import FleetError, InvalidInput
from ..schema.validation import validate
from ..store.monitoring import ScheduleStore
from .data_assets import DataAssets
from ..schema.monitoring import MonitorScheduleSpec, next_run, utcnow

if TYPE_CHECKING:
    from .monitor import Outcome

log = logging.getLogger("modelfleet.monitoring")

TICK_S = 5.0
WEBHOOK_TIMEOUT_S = 10.0


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def first_run(spec: MonitorScheduleSpec, now: dt.datetime | None = None) -> str:
    return iso(next_run(spec.trigger, now or utcnow()))


class Monitoring:
    def __init__(self, schedules: ScheduleStore, assets: DataAssets):
        self.schedules = schedules
        self.assets = assets
        self.latest: dict[str, dict] = {r["schedule"]: r for r in schedules.latest_runs()}
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()   # one monitor at a time: they share two cores with the gateway
        self.runs_here: Callable[[], bool] = lambda: True   # whether this server runs due schedules

    def run_now(self, name: str, now: dt.datetime | None = None) -> dict:
        """Run schedule `name` (blocking: call it in a thread); the stored run."""
        row = self.schedules.get(name)
        spec = validate(MonitorScheduleSpec, row.spec, f"schedule {name}")
        now = now or utcnow()
        from .monitor import run   # numpy: imported by the first run, not on the server's way to listening
        try:
            outcome = run(spec, self.assets, now)
            values = dict(status=outcome.status, error=None, results=outcome.results,
                          window_start=iso(outcome.window_start), window_end=iso(outcome.window_end))
        except (FleetError, OSError, ValueError, KeyError) as e:   # bad data: kept as a failed run
            message = e.message if isinstance(e, FleetError) else f"{type(e).__name__}: {e}"
            outcome, values = None, dict(status="failed", error=message, results=[], window_start=iso(now),
                                         window_end=iso(now))
            log.warning("monitor %s failed: %s", name, message)
        run_id = self.schedules.add_run(name, started_at=iso(now), **values)
        stored = {"id": run_id, "schedule": name, "started_at": iso(now), **values}
        self.latest[name] = stored
        if outcome is not None and outcome.breaches:
            self._alert(spec, stored, outcome)
        return stored

    def _alert(self, spec: MonitorScheduleSpec, stored: dict, outcome: Outcome) -> None:
        shown = ", ".join(f"{b['feature']} ({b['metric']} {b['value']} vs {b['threshold']})"
                          for b in outcome.breaches[:10])
        log.warning("monitor %s run %d: %d threshold(s) breached: %s", spec.name, stored["id"],
                    len(outcome.breaches), shown)
        doc = {"schedule": spec.name, "run_id": stored["id"], "status": stored["status"],
               "window_start": stored["window_start"], "window_end": stored["window_end"],
               "monitoring_target": spec.create_monitor.monitoring_target.endpoint_deployment_id,
               "breaches": outcome.breaches}
        import httpx   # only a breach with webhooks needs it
        for url in spec.create_monitor.alert_notification.webhooks:
            try:
                httpx.post(url, json=doc, timeout=WEBHOOK_TIMEOUT_S).raise_for_status()
            except httpx.HTTPError as e:
                log.warning("monitor %s: webhook %s failed: %s", spec.name, url, e)

    # -- the loop --------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def run_async(self, name: str) -> dict:
        async with self._lock:
            return await asyncio.to_thread(self.run_now, name)

    async def _loop(self) -> None:
        while True:
            try:
                if self.runs_here():   # several servers: the one that leads the controller runs them
                    await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("running monitors failed")
            await asyncio.sleep(TICK_S)

    async def tick(self) -> int:
        """Run every due schedule once; how many ran."""
        now = utcnow()
        due = await asyncio.to_thread(self.schedules.due, iso(now))
        for row in due:
            try:
                spec = validate(MonitorScheduleSpec, row.spec, f"schedule {row.name}")
            except InvalidInput as e:
                log.warning("schedule %s is not valid any more: %s", row.name, e.message)
                await asyncio.to_thread(self.schedules.set_next, row.name, None)
                continue
            await asyncio.to_thread(self.schedules.set_next, row.name, first_run(spec, now))
            await self.run_async(row.name)
        return len(due)
