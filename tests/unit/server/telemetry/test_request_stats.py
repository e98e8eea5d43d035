"""Live figures from the request statistics: counts, errors, percentiles, windows that roll."""

from __future__ import annotations

from modelfleet.server.telemetry.request_stats import HISTORY_S, RequestStats, percentile, _FINE


def test_summary_counts_errors_and_percentiles_over_the_last_minute():
    stats = RequestStats()
    now = 1_000_000.0
    for i in range(96):
        stats.record("ep", "blue", 200, now - i * 0.5, 0.002, 0.0, 0.0015, 10, 3)
    for _ in range(3):
        stats.record("ep", "blue", 424, now, 0.200, 0.0, 0.19, 10, 50)
    stats.record("ep", "", 401, now, 0.0001, 0.0, 0.0, 10, 60)
    both = stats.summary([("ep", "blue"), ("ep", "")], now)
    assert both["requests"] == 100 and both["errors"] == 4 and both["errors_4xx"] == 4
    assert both["requests_per_second"] == round(100 / 60, 3) and both["error_rate"] == 0.04
    assert 1.6 <= both["p50_ms"] <= 2.5 and 160 <= both["p99_ms"] <= 250  # within a bucket (x1.4)
    totals = stats.keys[("ep", "blue")].totals
    assert totals.codes == {200: 96, 424: 3} and totals.bytes_out == 96 * 3 + 3 * 50
    assert sum(totals.queue.counts) == 99 and sum(stats.keys[("ep", "")].totals.queue.counts) == 0


def test_old_seconds_leave_the_window_and_slots_are_reused():
    stats = RequestStats()
    stats.record("ep", "blue", 200, 1000.0, 0.001, 0, 0, 0, 0)
    assert stats.summary([("ep", "blue")], 1059.0)["requests"] == 1
    assert stats.summary([("ep", "blue")], 1060.0)["requests"] == 0        # a minute later
    stats.record("ep", "blue", 500, 1000.0 + HISTORY_S, 0.001, 0, 0, 0, 0)  # the same slot, reused
    late = stats.summary([("ep", "blue")], 1000.0 + HISTORY_S)
    assert late["requests"] == 1 and late["errors_5xx"] == 1
    assert stats.keys[("ep", "blue")].totals.codes == {200: 1, 500: 1}      # totals never roll


def test_series_are_per_second_without_the_second_under_way():
    stats = RequestStats()
    for t in (100.1, 100.2, 101.5, 103.9):
        stats.record("ep", "blue", 200, t, 0.001, 0, 0, 0, 0)
    s = stats.series([("ep", "blue")], 103.95, 4)
    assert s["t"] == [99, 100, 101, 102] and s["rps"] == [0, 2, 1, 0]
    assert s["p50_ms"][0] is None and s["p50_ms"][1] is not None


def test_percentile_of_an_empty_histogram_is_none_and_forget_drops_keys():
    assert percentile([0] * (len(_FINE) + 1), 0.5) is None
    stats = RequestStats()
    stats.record("a", "x", 200, 1.0, 0.001, 0, 0, 0, 0)
    stats.record("a", "", 401, 1.0, 0.001, 0, 0, 0, 0)
    stats.record("b", "x", 200, 1.0, 0.001, 0, 0, 0, 0)
    stats.forget("a", "x")
    assert set(stats.keys) == {("a", ""), ("b", "x")}
    stats.forget("a")
    assert set(stats.keys) == {("b", "x")}
