"""Traffic rules of an endpoint (Azure ML's): parsing `--traffic`, checking a split, cleaning it."""

from __future__ import annotations

import pytest

from modelfleet.domain import traffic
from modelfleet.domain.errors import InvalidInput

DEPLOYMENTS = {"blue", "green", "shadow"}


# -- parse ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("blue=90 green=10", {"blue": 90, "green": 10}),
    ("blue=90,green=10", {"blue": 90, "green": 10}),
    (" blue=90 ,  green=10 ", {"blue": 90, "green": 10}),
    ("blue=100", {"blue": 100}),
    ("blue=0", {"blue": 0}),
    ("blue=-5", {"blue": -5}),          # parsed; `check` refuses it with the range
    ("blue=10 blue=20", {"blue": 20}),  # the last one wins
    ("blue:90,green:10", {"blue": 90, "green": 10}),  # as older az samples write it
    ("", {}),
    (None, {}),
])
def test_parse(text, expected):
    assert traffic.parse(text) == expected


@pytest.mark.parametrize("text, message", [
    ("blue", "--traffic: 'blue' is not deployment=percent"),
    (":90", "--traffic: ':90' is not deployment=percent"),
    ("=90", "--traffic: '=90' is not deployment=percent"),
    ("blue=90 green", "--traffic: 'green' is not deployment=percent"),
    ("blue=ninety", "--traffic: 'ninety' for 'blue' is not a whole number"),
    ("blue=9.5", "--traffic: '9.5' for 'blue' is not a whole number"),
    ("blue=", "--traffic: '' for 'blue' is not a whole number"),
])
def test_parse_errors_name_the_flag_and_the_part(text, message):
    with pytest.raises(InvalidInput) as info:
        traffic.parse(text)
    assert info.value.message == message


def test_parse_errors_name_the_flag_given():
    with pytest.raises(InvalidInput, match=r"^--mirror-traffic: 'x' is not deployment=percent$"):
        traffic.parse("x", flag="--mirror-traffic")


# -- check ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("split, mirror", [
    ({"blue": 100}, {}),
    ({"blue": 90, "green": 10}, {}),
    ({"blue": 0, "green": 0}, {}),                    # nothing takes traffic: allowed
    ({}, {}),
    ({"blue": 100, "green": 0}, {"green": 50}),       # a 0% deployment can be the mirror
    ({"blue": 100}, {"shadow": 1}),
    ({"blue": 100}, {"shadow": 10, "green": 0}),      # a 0% mirror entry is no mirror
    ({"blue": 100}, {"blue": 0}),
])
def test_valid_splits(split, mirror):
    traffic.check(split, mirror, DEPLOYMENTS)


@pytest.mark.parametrize("split, mirror, message", [
    ({"teal": 100}, {}, "traffic names deployment 'teal', which does not exist on this endpoint"),
    ({"blue": 100}, {"teal": 10}, "traffic names deployment 'teal', which does not exist on this endpoint"),
    ({"blue": 101}, {}, "traffic for 'blue' must be a whole number from 0 to 100, got 101"),
    ({"blue": 110, "green": -10}, {}, "traffic for 'blue' must be a whole number from 0 to 100, got 110"),
    ({"blue": 50.0, "green": 50}, {}, "traffic for 'blue' must be a whole number from 0 to 100, got 50.0"),
    ({"blue": "50", "green": 50}, {}, "traffic for 'blue' must be a whole number from 0 to 100, got '50'"),
    ({"blue": 100}, {"shadow": -1}, "traffic for 'shadow' must be a whole number from 0 to 100, got -1"),
    ({"blue": 80, "green": 30}, {}, "traffic percentages must sum to 0 or 100, got 110"),
    ({"blue": 50}, {}, "traffic percentages must sum to 0 or 100, got 50"),
    ({"blue": 100}, {"green": 10, "shadow": 10}, "mirror traffic can go to one deployment only"),
    ({"blue": 100}, {"shadow": 51}, "mirror traffic to 'shadow' is 51%; at most 50% can be mirrored"),
    ({"blue": 100}, {"shadow": 100}, "mirror traffic to 'shadow' is 100%; at most 50% can be mirrored"),
    ({"blue": 90, "green": 10}, {"green": 10}, "cannot mirror traffic to 'green': it already takes live traffic"),
])
def test_invalid_splits_say_why(split, mirror, message):
    with pytest.raises(InvalidInput) as info:
        traffic.check(split, mirror, DEPLOYMENTS)
    assert info.value.message == message


def test_the_mirror_limit_is_inclusive():
    traffic.check({"blue": 100}, {"shadow": traffic.MAX_MIRROR}, DEPLOYMENTS)


# -- clean ------------------------------------------------------------------------------------------

def test_clean_drops_zeros_and_sorts_by_name():
    cleaned = traffic.clean({"green": 10, "blue": 90, "shadow": 0})
    assert cleaned == {"blue": 90, "green": 10} and list(cleaned) == ["blue", "green"]
    assert traffic.clean({"blue": 0}) == {} and traffic.clean({}) == {}
