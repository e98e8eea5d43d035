"""Names and model references: one rule each, and errors that say what is wrong and state the rule."""

from __future__ import annotations

import re

import pytest

from modelfleet.domain.errors import InvalidInput
from modelfleet.domain.names import (ENDPOINT_RULE, NAME_RULE, ModelRef, check_endpoint_name, check_name,
                                     check_version, problem)


@pytest.mark.parametrize("name", ["a", "A", "0", "model_a", "iris.v2", "a-b_c.d", "x" * 64, "9lives"])
def test_good_names(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "-x", "_x", ".x", "a b", "x" * 65, "../etc", "a/b", "a\\b", "é", "a:b",
                                  "a@b", "a\x00b", None, 3, ["a"]])
def test_bad_names_state_the_rule(name):
    with pytest.raises(InvalidInput) as info:
        check_name(name, "model name")
    assert info.value.message.startswith(f"invalid model name {name!r}: it ")
    assert info.value.message.endswith(f"; use {NAME_RULE}")


@pytest.mark.parametrize("name, endpoint, what", [
    ("", False, "is empty"), ("x" * 65, False, "is 65 characters long (1 to 64 allowed)"),
    ("-x", False, "starts with '-' (the first character must be a letter or digit)"),
    ("a b", False, "has ' ' at position 2"), ("é", False, "starts with 'é' (the first character must be a letter or digit)"), (3, False, "is a int, not text"),
    ("ab", True, "is 2 characters long (3 to 32 allowed)"), ("1abc", True, "starts with '1' (the first character "
                                                                            "must be a letter)"),
    ("a_bc", True, "has '_' at position 2"), ("abc-", True, "ends with '-'"), ("abc\n", True, "has '\\n' at position 4"),
])
def test_errors_say_what_is_wrong_with_the_name(name, endpoint, what):
    assert problem(name, endpoint) == what
    with pytest.raises(InvalidInput, match=re.escape(f"it {what}; use")):
        (check_endpoint_name if endpoint else check_name)(name)


@pytest.mark.parametrize("check", [check_name, check_version, check_endpoint_name])
def test_a_trailing_newline_is_not_part_of_a_name(check):
    with pytest.raises(InvalidInput, match="at position 4"):
        check("abc\n")


@pytest.mark.parametrize("version, expected", [("1", "1"), (2, "2"), ("2024.01.05", "2024.01.05"), ("v1-rc_2", "v1-rc_2")])
def test_versions_are_names_and_numbers_become_text(version, expected):
    assert check_version(version) == expected


@pytest.mark.parametrize("version", ["", "-1", "1 2", "x" * 65, "1/2"])
def test_bad_versions(version):
    with pytest.raises(InvalidInput, match=r"^invalid version .*: it .*; use 1-64 letters"):
        check_version(version)


@pytest.mark.parametrize("name", ["abc", "iris-ep", "a1b", "A-B-C", "x" * 32])
def test_good_endpoint_names(name):
    assert check_endpoint_name(name) == name


@pytest.mark.parametrize("name", ["ab", "x" * 33, "1abc", "-abc", "abc-", "a_bc", "a.bc", "ab c", "ábc", None])
def test_bad_endpoint_names_state_the_rule(name):
    with pytest.raises(InvalidInput) as info:
        check_endpoint_name(name)
    assert info.value.message.startswith(f"invalid endpoint name {name!r}: it ")
    assert info.value.message.endswith(f"; use {ENDPOINT_RULE}")


@pytest.mark.parametrize("text, ref, shown", [
    ("iris:1", ModelRef("iris", version="1"), "iris:1"),
    ("iris@prod", ModelRef("iris", label="prod"), "iris@prod"),
    ("iris", ModelRef("iris"), "iris@latest"),
    ("azureml:iris:2", ModelRef("iris", version="2"), "iris:2"),
    ("azureml:iris@latest", ModelRef("iris", label="latest"), "iris@latest"),
    ("  iris:1 ", ModelRef("iris", version="1"), "iris:1"),
    ("iris:1.0:a", None, None),   # a version holds no ':'
])
def test_model_references(text, ref, shown):
    if ref is None:
        with pytest.raises(InvalidInput, match="invalid version '1.0:a'"):
            ModelRef.parse(text)
        return
    assert ModelRef.parse(text) == ref
    assert str(ModelRef.parse(text)) == shown


@pytest.mark.parametrize("text, what", [
    ("", "model name"), (":1", "model name"), ("@prod", "model name"), ("../m:1", "model name"),
    ("iris@", "label"), ("iris@a b", "label"), ("iris:", "version"), ("iris:a b", "version"),
])
def test_bad_references_name_the_part(text, what):
    with pytest.raises(InvalidInput, match=f"^invalid {what} "):
        ModelRef.parse(text)
