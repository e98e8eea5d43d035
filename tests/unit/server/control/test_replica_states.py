"""A replica's state as every view counts it (server/replica_states.py): ready, busy among the
ready, starting, draining, failed, and wanted; the roster they are counted from; /metrics."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from modelfleet.server.telemetry.metrics import Metrics
from modelfleet.server.control.replica_states import ReplicaCounts, count
from modelfleet.server.control.replicas import Replica, ReplicaState as S, Roster, transition


class Handle:
    """What counting reads of a replica handle: its id, requests in flight, describe()."""

    def __init__(self, rid: str, inflight: int = 0):
        self.id = rid
        self.inflight = inflight

    def describe(self) -> dict:
        return {"pid": None}


def replica(roster: Roster | None, endpoint: str, rid: str, state: S = S.READY, inflight: int = 0) -> Replica:
    r = Replica(Handle(rid, inflight), endpoint, "main", 0.0, roster=roster)
    path = {S.STARTING: [], S.READY: [S.READY], S.DRAINING: [S.READY, S.DRAINING], S.FAILED: [S.FAILED],
            S.STOPPED: [S.READY, S.DRAINING, S.STOPPED]}[state]
    for step in path:
        transition(r, step)
    return r


def test_a_ready_replica_with_a_request_in_flight_is_busy_and_still_ready():
    replicas = [replica(None, "ep", "a", inflight=3), replica(None, "ep", "b"), replica(None, "ep", "c", S.STARTING),
                replica(None, "ep", "d", S.DRAINING, inflight=1), replica(None, "ep", "e", S.FAILED)]
    n = count(replicas, wanted=2)
    assert n == ReplicaCounts(wanted=2, ready=2, busy=1, starting=1, draining=1, failed=1)
    assert [r.busy for r in replicas] == [True, False, False, False, False]   # a draining one is not busy
    assert n.by_state() == {"starting": 1, "ready": 2, "draining": 1, "failed": 1}   # busy is no state
    assert sum(n.by_state().values()) == len(replicas)     # each replica in exactly one state
    assert replicas[0].to_dict()["busy"] is True and replicas[0].to_dict()["state"] == "ready"


def test_no_replica_counts_zero_of_each_and_the_wanted_ones():
    assert count([], wanted=0).to_dict() == {"wanted": 0, "ready": 0, "busy": 0, "starting": 0, "draining": 0,
                                             "failed": 0}
    assert count([], wanted=3).ready == 0


def test_the_roster_keeps_each_replica_from_its_creation_until_it_stops():
    roster = Roster()
    r = replica(roster, "ep", "main-1", S.STARTING)
    assert roster.of("ep", "main") == [r] and count(roster.of("ep", "main"), 1).starting == 1
    transition(r, S.READY)
    assert count(roster.of("ep", "main"), 1).ready == 1
    transition(r, S.DRAINING)
    transition(r, S.STOPPED)
    assert roster.of("ep", "main") == [] and roster.deployments() == [] and list(roster) == []


def test_replicas_with_the_same_id_in_two_endpoints_are_each_counted():
    # a deployment's replica ids are its name, its spec's hash and a serial: the same deployment
    # of the same model in two endpoints has the same ids
    roster = Roster()
    a, b = replica(roster, "a-ep", "main-785dd7-1", inflight=1), replica(roster, "b-ep", "main-785dd7-1")
    assert roster.of("a-ep", "main") == [a] and roster.of("b-ep", "main") == [b]
    assert roster.deployments() == [("a-ep", "main"), ("b-ep", "main")] and list(roster) == [a, b]
    transition(b, S.DRAINING)
    transition(b, S.STOPPED)
    assert count(roster.of("a-ep", "main"), 1) == ReplicaCounts(wanted=1, ready=1, busy=1)


def test_metrics_show_every_state_of_every_deployment_with_busy_and_wanted_apart():
    m = Metrics()
    m.state_source = lambda: [("ep", "busy-one", ReplicaCounts(wanted=1, ready=1, busy=1)),
                              ("ep", "at-zero", ReplicaCounts(wanted=0))]
    body, _ = m.exposition()
    samples = {(s.name, s.labels.get("deployment"), s.labels.get("state")): s.value
               for fam in text_string_to_metric_families(body.decode()) for s in fam.samples
               if s.name.startswith("modelfleet_replicas")}
    assert samples == {
        ("modelfleet_replicas", "busy-one", "starting"): 0, ("modelfleet_replicas", "busy-one", "ready"): 1,
        ("modelfleet_replicas", "busy-one", "draining"): 0, ("modelfleet_replicas", "busy-one", "failed"): 0,
        ("modelfleet_replicas", "at-zero", "starting"): 0, ("modelfleet_replicas", "at-zero", "ready"): 0,
        ("modelfleet_replicas", "at-zero", "draining"): 0, ("modelfleet_replicas", "at-zero", "failed"): 0,
        ("modelfleet_replicas_busy", "busy-one", None): 1, ("modelfleet_replicas_busy", "at-zero", None): 0,
        ("modelfleet_replicas_wanted", "busy-one", None): 1, ("modelfleet_replicas_wanted", "at-zero", None): 0}


def test_fleet_top_reads_ready_of_wanted_then_what_else_there_is():
    from modelfleet.cli.top import replicas_text
    assert replicas_text(ReplicaCounts(wanted=1, ready=1, busy=1, starting=1).to_dict()) == \
        "1 ready of 1, 1 busy, 1 starting"
    assert replicas_text(ReplicaCounts(wanted=0).to_dict()) == "0 ready of 0"
