"""What the control API asks the controller: a deployment's replicas, health, logs, whether a
step is under way. Read-only views of the controller's state."""

from __future__ import annotations

import asyncio

from ...backends.base import Backend
from ...files.fsutil import tail_lines
from ...schema.workspace import Workspace
from .deployment_state import CRASH_LOOP_AFTER, DeploymentRuntime
from .desired_state import DesiredState
from .reconciler import Key
from .replica_states import ReplicaCounts, count
from .replicas import Roster


class Queries:
    def __init__(self, ws: Workspace, runtimes: dict[Key, DeploymentRuntime], state: DesiredState, backend: Backend,
                 roster: Roster):
        self._ws, self._runtimes, self._state, self._backend, self._roster = ws, runtimes, state, backend, roster

    def replicas_of(self, endpoint: str, name: str) -> list[dict]:
        rt = self._runtimes.get((endpoint, name))
        return [r.to_dict() for r in rt.group] if rt else []

    def is_busy(self, endpoint: str, name: str) -> bool:
        rt = self._runtimes.get((endpoint, name))
        return bool(rt and rt.busy)

    async def logs(self, endpoint: str, name: str, lines: int) -> str:
        """The serving replicas' logs, wherever they run, after the newest log of a replica that
        no longer serves (a failed start or a crash shows there)."""
        rt = self._runtimes.get((endpoint, name))
        current = list(rt.group) if rt else []
        ids = {r.id for r in current}
        folder = self._ws.logs_dir / endpoint / name

        def newest_other() -> list[tuple[str, list[str]]]:
            files = sorted(folder.glob("*.log"), key=lambda f: f.stat().st_mtime) if folder.is_dir() else []
            return [(f.stem, tail_lines(f, lines)) for f in [f for f in files if f.stem not in ids][-1:]]

        parts = await asyncio.to_thread(newest_other)
        tails = await asyncio.gather(*(r.handle.log_tail(lines) for r in current))
        parts += [(r.id, tail.splitlines()) for r, tail in zip(current, tails)]
        return "\n".join(line for rid, text in parts for line in (f"==> {rid} <==", *text))

    def health_of(self, endpoint: str, name: str, instance_count: int) -> dict:
        """Healthy (every wanted replica ready), Degraded (some), Unavailable (none), CrashLoop
        (replicas keep failing to start or dying before they serve), or Idle (scaled to zero);
        why, how many replicas it wants now, and how many it lost."""
        rt = self._runtimes.get((endpoint, name))
        n = self.replica_counts(endpoint, name, instance_count)
        health = ("Idle" if n.wanted == n.ready == 0 else "Healthy" if n.ready >= n.wanted else
                  "CrashLoop" if rt and rt.failures >= CRASH_LOOP_AFTER else
                  "Degraded" if n.ready else "Unavailable")
        fault = rt.fault if rt else None
        if health == "CrashLoop" and fault is None:
            fault = rt.last_failure
        compute = self._state.compute_of(endpoint)
        if compute != "local" and compute not in self._state.attached:
            fault = f"compute {compute!r} is not attached to this workspace (fleet compute attach --name {compute})"
        elif fault is None and health != "Healthy" and compute != "local":
            fault = self._backend.fault(compute)
        return {"health": health, **{f"{k}_replicas": v for k, v in n.to_dict().items()}, "fault": fault,
                "restarts": rt.restarts if rt else 0, "last_failure": rt.last_failure if rt else None,
                "last_cold_start_ms": rt.cold_start_ms if rt else None}

    def replica_counts(self, endpoint: str, name: str, instance_count: int = 0) -> ReplicaCounts:
        """Its replicas by state (replica_states.py) and how many it wants now: the autoscaler's
        count, else its row's instance_count as last read (`instance_count` until it is read)."""
        rt = self._runtimes.get((endpoint, name))
        if rt is not None and rt.desired is not None:
            instance_count = 0 if rt.retired else rt.desired.spec.instance_count
        wanted = rt.scale.want if rt and rt.scale else instance_count
        return count(self._roster.of(endpoint, name), wanted)
