"""Twenty clients, each a user of its own (AzureML Data Scientist), create, update and delete
models and deployments at once for RUN_S seconds against one server whose metadata is in a real
PostgreSQL: every change the server acknowledged is in the final state, the only refusals are
412s to callers whose etag had gone stale (a deployment all of them update: its writes form one
unbroken chain), and the activity log holds one line per change and per refusal, under its user.
A real server process over HTTP; the clients are threads of this process, each with its own
connection (modelfleet's Python client)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from modelfleet import Fleet
from modelfleet.cli.quickstart import train
from modelfleet.domain.errors import FleetError, PreconditionFailed

from .conftest import _stop_servers

CLIENTS = 20
RUN_S = 60.0           # how long the clients write at once (the minute)
SHARED_MODEL = "shared-model"
CONTESTED = ("shared-ep", "contested")   # the deployment every client updates from what it read


@dataclass
class Ledger:
    """What one client was told: every acknowledged change, every refusal."""
    registered: set = field(default_factory=set)           # (name, version)
    deleted: set = field(default_factory=set)              # (name, version)
    described: dict = field(default_factory=dict)          # (name, version) -> the last description written
    descriptions: int = 0                                  # descriptions written (a version may get several)
    deployments_made: set = field(default_factory=set)     # (endpoint, name)
    deployments_deleted: set = field(default_factory=set)
    contested: list = field(default_factory=list)          # (the writer tag it read, the one it wrote)
    refused: int = 0                                       # 412s on the contested deployment
    unexpected: list = field(default_factory=list)         # anything else that failed: none wanted


def _fleet(env: dict, *args: str) -> subprocess.CompletedProcess:
    p = subprocess.run(["fleet", *args], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, (args, p.stdout, p.stderr)
    return p


def _client_loop(i: int, fleet: Fleet, model_dir: Path, deadline: float, ledger: Ledger) -> None:
    own_model, own_endpoint = f"m{i}", f"ep{i}"
    serial = itertools.count()
    extra: list[str] = []    # this client's 0%-traffic deployments still there
    steps = ("register", "describe", "contest", "deploy", "delete_version", "contest", "undeploy")
    for step in itertools.cycle(steps):
        if time.monotonic() >= deadline:
            return
        n = next(serial)
        try:
            if step == "register":
                for name in (own_model, SHARED_MODEL):
                    ledger.registered.add((name, fleet.models.register(name, model_dir).version))
            elif step == "describe":
                mine = sorted((v for (name, v) in ledger.registered - ledger.deleted if name == own_model), key=int)
                if mine:
                    text = f"client {i} write {n}"
                    fleet.models.update(own_model, mine[-1], description=text)
                    ledger.described[(own_model, mine[-1])] = text
                    ledger.descriptions += 1
            elif step == "delete_version":
                mine = sorted((v for (name, v) in ledger.registered - ledger.deleted if name == own_model), key=int)
                if len(mine) > 1:
                    fleet.models.delete(own_model, mine[0])
                    ledger.deleted.add((own_model, mine[0]))
            elif step == "contest":
                current = fleet.online_deployments.get(CONTESTED[1], CONTESTED[0])
                wrote = f"{i}-{n}"
                try:
                    fleet.online_deployments.update(CONTESTED[1], CONTESTED[0], etag=current["etag"], wait=False,
                                                    tags={"writer": wrote})
                    ledger.contested.append((current["tags"].get("writer"), wrote))
                except PreconditionFailed as e:
                    assert e.http_status == 412, e
                    ledger.refused += 1
            elif step == "deploy":
                name = f"dep{n}"
                fleet.online_deployments.create(name, own_endpoint, "base:1", instance_count=1, wait=False)
                ledger.deployments_made.add((own_endpoint, name))
                extra.append(name)
            elif step == "undeploy" and extra:
                name = extra.pop(0)
                fleet.online_deployments.delete(name, own_endpoint)
                ledger.deployments_deleted.add((own_endpoint, name))
        except FleetError as e:
            ledger.unexpected.append(f"client {i} {step}: {type(e).__name__} {getattr(e, 'http_status', '')}: {e}")


@pytest.mark.slow
def test_twenty_clients_writing_at_once_on_postgresql_lose_no_change(postgres_server, tmp_path):
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    owner = {**{k: v for k, v in os.environ.items() if not k.startswith("FLEET_")},
             "FLEET_HOME": str(tmp_path / "server-home"), "PATH": path}
    model_dir = tmp_path / "iris"
    train("iris", model_dir)
    try:
        _fleet(owner, "server", "start", "--database-url", postgres_server.create_database())
        status = json.loads(_fleet(owner, "server", "status", "--show-token", "-o", "json").stdout)
        setup = Fleet(server=status["url"], token=status["token"])
        tokens = []
        for i in range(CLIENTS):
            tokens.append(setup.users.create(f"user{i}")["token"])
            setup.role_assignments.create(f"user{i}", "AzureML Data Scientist")
        fleets = [Fleet(server=status["url"], token=t) for t in tokens]
        setup.models.register("base", model_dir, version="1")
        setup.online_endpoints.create(CONTESTED[0])
        setup.online_deployments.create(CONTESTED[1], CONTESTED[0], "base:1", instance_count=1)
        for i in range(CLIENTS):
            setup.online_endpoints.create(f"ep{i}")
            setup.online_deployments.create("base", f"ep{i}", "base:1", instance_count=1, wait=False)

        ledgers = [Ledger() for _ in range(CLIENTS)]
        deadline = time.monotonic() + RUN_S
        threads = [threading.Thread(target=_client_loop, args=(i, fleets[i], model_dir, deadline, ledgers[i]))
                   for i in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        assert [u for ledger in ledgers for u in ledger.unexpected] == []
        registered = set().union(*(x.registered for x in ledgers))
        deleted = set().union(*(x.deleted for x in ledgers))
        # every acknowledged version is there, every deleted one gone; no version given twice
        assert sum(len(x.registered) for x in ledgers) == len(registered)
        for name in [SHARED_MODEL, *(f"m{i}" for i in range(CLIENTS))]:
            listed = {m.version for m in setup.models.list(name)}
            assert listed == {v for (n, v) in registered - deleted if n == name}, name
        for (name, version), text in set().union(*(x.described.items() for x in ledgers)):
            if (name, version) not in deleted:
                assert setup.models.get(name, version).description == text

        made = set().union(*(x.deployments_made for x in ledgers))
        gone = set().union(*(x.deployments_deleted for x in ledgers))
        for i in range(CLIENTS):
            present = {d["name"] for d in setup.online_deployments.list(f"ep{i}")}
            assert present == {"base"} | {d for (e, d) in made - gone if e == f"ep{i}"}

        # the contested deployment: each acknowledged write read the one before it; none was lost
        writes = [w for x in ledgers for w in x.contested]
        assert writes and sum(x.refused for x in ledgers) > 0
        read_from = Counter(before for before, _ in writes)
        assert max(read_from.values()) == 1            # no two writes committed on the same version
        written = {after for _, after in writes}
        assert set(read_from) - written == {None}      # the first write read the untagged deployment
        final = setup.online_deployments.get(CONTESTED[1], CONTESTED[0])["tags"]["writer"]
        assert written - set(read_from) == {final}     # the one write no other write read is the final state

        for endpoint, name in [(f"ep{i}", "base") for i in range(CLIENTS)] + [CONTESTED]:
            setup.online_deployments.wait(endpoint, name, timeout=60)   # and the controller kept up
        # one line per change in the activity log, under the user that made it, and one per refusal
        for i, ledger in enumerate(ledgers):
            entries = [e for e in setup.activity_log.list(caller=f"user{i}", limit=10_000)
                       if not e["resource"].startswith("artifacts/")]   # a model's files: uploaded once by whoever came first
            changes = (len(ledger.registered) + ledger.descriptions + len(ledger.deleted) + len(ledger.deployments_made)
                       + len(ledger.deployments_deleted) + len(ledger.contested))
            assert sum(e["status"] == "Succeeded" for e in entries) == changes, i
            refused = [e for e in entries if e["status"] != "Succeeded"]
            assert len(refused) == ledger.refused and {(e["http_status"], e["resource"]) for e in refused} <= {
                (412, f"endpoints/{CONTESTED[0]}/deployments/{CONTESTED[1]}")}
        for f in [setup, *fleets]:
            f.close()
    finally:
        _stop_servers(tmp_path / "server-home")
