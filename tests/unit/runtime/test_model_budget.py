"""The shared worker's least-recently-used eviction by measured bytes, as pure bookkeeping."""

from __future__ import annotations

from hypothesis import given, strategies as st

from modelfleet.runtime.model_budget import LruBudget

MiB = 2**20


def test_models_within_the_budget_all_stay_loaded():
    b = LruBudget(100 * MiB)
    assert b.make_room("a", 30 * MiB) == [] and b.add("a", 30 * MiB) == []
    assert b.make_room("b", 30 * MiB) == [] and b.add("b", 30 * MiB) == []
    assert b.loaded() == ["a", "b"] and b.used == 60 * MiB


def test_the_least_recently_used_goes_first_to_make_room():
    b = LruBudget(100 * MiB)
    for key in "abc":
        b.add(key, 30 * MiB)
    b.touch("a")                                   # a used last: b is now the oldest
    assert b.make_room("d", 30 * MiB) == ["b"]
    assert b.add("d", 30 * MiB) == []
    assert b.loaded() == ["c", "a", "d"] and b.used == 90 * MiB
    assert "b" not in b and b.size("b") == 30 * MiB   # its size is kept for the next estimate


def test_a_model_larger_than_estimated_evicts_after_its_load():
    b = LruBudget(100 * MiB)
    b.add("a", 40 * MiB)
    b.add("b", 40 * MiB)
    assert b.make_room("c", 1 * MiB) == []          # the files were small ...
    assert b.add("c", 50 * MiB) == ["a"]            # ... the model in memory was not
    assert b.loaded() == ["b", "c"] and b.used == 90 * MiB


def test_bytes_count_not_models():
    b = LruBudget(100 * MiB)
    for i in range(1000):
        assert b.add(f"small-{i}", 64 * 1024) == []   # a thousand small ones fit (62.5 MiB)
    assert len(b) == 1000
    evicted = b.add("big", 50 * MiB)                  # 12.5 MiB too much: 200 small ones go
    assert evicted == [f"small-{i}" for i in range(200)] and b.used == 100 * MiB


def test_a_model_larger_than_the_budget_still_serves_alone():
    b = LruBudget(10 * MiB)
    b.add("a", 5 * MiB)
    assert b.make_room("huge", 50 * MiB) == ["a"]
    assert b.add("huge", 50 * MiB) == [] and b.loaded() == ["huge"]


def test_removing_forgets_and_evicting_remembers():
    b = LruBudget(100 * MiB)
    b.add("a", 10 * MiB)
    b.add("b", 20 * MiB)
    assert b.evict("a") and not b.evict("a") and b.size("a") == 10 * MiB
    assert b.remove("b") and b.size("b") is None and b.used == 0
    assert not b.remove("nothing")


@given(st.lists(st.tuples(st.sampled_from("abcdefgh"), st.integers(0, 60 * MiB)), max_size=60))
def test_the_budget_holds_whenever_more_than_one_model_is_loaded(loads):
    b = LruBudget(100 * MiB)
    for key, size in loads:
        for victim in b.make_room(key, size):
            assert victim != key
        b.add(key, size)
        assert b.loaded()[-1] == key                      # the newest is never its own victim
        assert b.used == sum(b.size(k) for k in b.loaded())
        assert b.used <= b.budget or len(b) == 1
