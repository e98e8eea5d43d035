"""The failed-attempt bucket per address, on a fake clock."""

from modelfleet.server.http.failed_attempts import FailedAttempts


def test_a_burst_passes_then_one_attempt_per_interval_per_address():
    now = [0.0]
    limit = FailedAttempts(per_minute=3, clock=lambda: now[0])
    for _ in range(3):
        assert limit.retry_after("10.0.0.1") == 0
        limit.failed("10.0.0.1")
    assert limit.retry_after("10.0.0.1") == 20   # one attempt back every 60/3 s
    assert limit.retry_after("10.0.0.2") == 0    # another address is not held up
    now[0] = 19.0
    assert limit.retry_after("10.0.0.1") == 1
    now[0] = 20.0
    assert limit.retry_after("10.0.0.1") == 0
    limit.failed("10.0.0.1")
    assert limit.retry_after("10.0.0.1") == 20
    now[0] = 1000.0
    assert limit.retry_after("10.0.0.1") == 0    # refilled, never beyond the burst
    for _ in range(3):
        limit.failed("10.0.0.1")
    assert limit.retry_after("10.0.0.1") == 20
