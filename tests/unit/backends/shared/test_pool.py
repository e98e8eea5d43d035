"""The shared pool's pure decisions: how many workers, and when one is recycled."""

from __future__ import annotations

from modelfleet.backends.shared.pool import default_workers, leaking, recycle_slack

MiB = 2**20


def test_a_worker_that_never_freed_a_model_is_not_leaking():
    assert not leaking({}, 32 * MiB)
    assert not leaking({"rss": 900 * MiB, "baseline": 100 * MiB, "used": 0, "frees": 0}, 32 * MiB)


def test_memory_beyond_the_models_after_frees_is_a_leak():
    stats = {"rss": 300 * MiB, "baseline": 100 * MiB, "used": 150 * MiB, "frees": 3}
    assert not leaking(stats, 64 * MiB)                      # 50 MiB unaccounted: within the slack
    assert leaking({**stats, "rss": 400 * MiB}, 64 * MiB)    # 150 MiB: recycle


def test_the_slack_is_half_the_budget_and_never_tiny():
    assert recycle_slack(1 << 30) == 512 * MiB
    assert recycle_slack(40 * MiB) == 32 * MiB


def test_at_least_two_workers():
    assert 2 <= default_workers() <= 8
