"""The supervisor's probes (Azure's fields), progress and crash loops, on a fake backend and a
fake clock (the harness of test_controller.py)."""

from __future__ import annotations

from modelfleet.backends.base import EXIT_MEMORY_LIMIT

from tests.fakes import until
from .test_controller import h, run  # noqa: F401  (h is a fixture)


def test_probes_start_after_initial_delay_and_a_miss_takes_the_replica_out_of_routing(h):
    async def scenario():
        h.put(instance_count=2, liveness_probe={"initial_delay": 5, "period": 1, "timeout": 1,
                                                "failure_threshold": 3, "success_threshold": 2})
        await h.converge()
        flaky, steady = h.backend.live("blue")
        flaky.answer_probes = False
        await h.clock.advance(4)
        assert flaky.responsive                      # not probed before initial_delay
        await h.clock.advance(1.5)
        assert not flaky.responsive and not flaky.closed   # one miss: skipped by routing, not killed
        assert h.router.table.endpoints["ep"].deployments["blue"].pick() is steady
        flaky.answer_probes = True
        await h.clock.advance(1)
        assert not flaky.responsive                  # one answer is not success_threshold (2)
        await h.clock.advance(1)
        assert flaky.responsive and not flaky.closed
    run(scenario())


def test_a_model_call_past_the_request_timeout_gets_its_replica_replaced_at_once(h):
    async def scenario():
        h.put(request_settings={"request_timeout_ms": 2000})
        await h.converge()
        busy = h.backend.live("blue")[0]
        busy.busy_s = 1.9                            # slow, within the timeout: no restart
        await h.clock.advance(1)
        assert not busy.closed
        busy.busy_s = 2.0                            # it still answers probes, but run() is stuck
        await h.clock.advance(0.25)
        await until(lambda: busy.closed)
        assert any("run() is stuck; killing it and starting another" in n for n in busy.notes)
        # no backoff: the replacement was started without the clock moving on
        replacement = await until(lambda: [r for r in h.backend.live("blue") if r is not busy])
        await until(lambda: h.routed() == tuple(replacement))
        health = h.controller.queries.health_of("ep", "blue", 1)
        assert health["restarts"] == 1 and "run() is stuck" in health["last_failure"]
    run(scenario())


def test_a_request_timing_out_in_a_call_far_older_than_usual_gets_its_replica_replaced_at_once(h):
    async def scenario():
        h.put(instance_count=2, request_settings={"request_timeout_ms": 2000})
        await h.converge()
        slow, stuck = h.backend.live("blue")
        slow.give_up(slow.send("k", 1, b"{}"))        # timed out, but no call far older than usual:
        await h.clock.advance(0)                       # probed, not killed
        assert not slow.closed
        stuck.overdue_at = 0.0
        stuck.busy_s = 1.95                            # its call started after the request arrived
        stuck.give_up(stuck.send("k", 1, b"{}"))       # the gateway gave up: the watch wakes now
        await until(lambda: stuck.closed)
        assert any("outlived its request's timeout (2 s): run() is stuck" in n for n in stuck.notes)
        assert not slow.closed
    run(scenario())


def test_replicas_that_keep_dying_before_serving_are_a_crash_loop_with_the_reason(h):
    async def scenario():
        h.put(resources={"limits": {"memory": "64Mi"}})
        await h.converge()
        for n in range(1, 4):
            victim = h.backend.live("blue")[0]
            victim.die(EXIT_MEMORY_LIMIT)
            await until(lambda: h.routed() == ())
            health = h.controller.queries.health_of("ep", "blue", 1)
            why = f"replica {victim.id} reached its memory limit (64Mi)"
            assert health["health"] == ("CrashLoop" if n >= 3 else "Unavailable")
            assert health["last_failure"] == why and health["fault"] == (why if n >= 3 else None)
            await h.clock.advance(0.1 * 2 ** (n - 1))     # the backoff doubles
            await h.reconcile()
            await until(lambda: len(h.routed()) == 1)
        assert h.controller.queries.health_of("ep", "blue", 1)["health"] == "Healthy"
    run(scenario())


def test_a_replica_that_served_before_it_died_is_restarted_without_growing_backoff(h):
    async def scenario():
        h.put()
        await h.converge()
        for _ in range(4):
            r = h.backend.live("blue")[0]
            fut = r.send("k", 1, b"{}")
            r.answer_all()
            await fut
            r.die()
            await until(lambda: h.routed() == ())
            await h.clock.advance(0.1)               # always the first step of the backoff
            await h.reconcile()
            await until(lambda: len(h.routed()) == 1)
        assert h.controller.queries.health_of("ep", "blue", 1)["restarts"] == 4
    run(scenario())


def test_an_os_error_starting_replicas_is_one_log_line_and_a_backoff(h, caplog):
    async def scenario():
        h.put()
        await h.converge()
        start = h.backend.start

        async def refuse(spec):
            raise OSError(24, "Too many open files")
        h.backend.start = refuse
        h.backend.live("blue")[0].die()
        await until(lambda: h.routed() == ())

        def lines():
            return [r for r in caplog.records if "Too many open files" in r.getMessage()]
        for n, step in enumerate((0.1, 0.2, 0.4), 1):
            await h.clock.advance(step)
            await h.reconcile()
            await until(lambda: len(lines()) == n)   # one attempt per backoff step, one line each
            await h.reconcile()
            assert len(lines()) == n
        assert not any(r.exc_info for r in lines())
        assert h.controller.queries.health_of("ep", "blue", 1)["fault"] == "OSError: [Errno 24] Too many open files"
        h.backend.start = start
        await h.clock.advance(0.8)
        await h.reconcile()
        await until(lambda: len(h.routed()) == 1)
    run(scenario())
