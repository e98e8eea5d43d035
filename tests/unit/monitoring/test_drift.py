"""The drift and quality metrics on known distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modelfleet.monitoring import drift

ALL_NUMERICAL = ("jensen_shannon_distance", "normalized_wasserstein_distance", "population_stability_index",
                 "two_sample_kolmogorov_smirnov_test")


def test_the_same_distribution_is_near_zero_and_a_shift_is_far():
    rng = np.random.default_rng(0)
    ref, same, shifted = rng.normal(0, 1, 5000), rng.normal(0, 1, 5000), rng.normal(1, 1, 5000)
    near = drift.numerical_drift(ref, same, ALL_NUMERICAL)
    far = drift.numerical_drift(ref, shifted, ALL_NUMERICAL)
    assert near["jensen_shannon_distance"] < 0.1 < 0.3 < far["jensen_shannon_distance"] <= 1
    assert near["normalized_wasserstein_distance"] < 0.1
    assert far["normalized_wasserstein_distance"] == pytest.approx(1.0, abs=0.1)   # one standard deviation
    assert near["population_stability_index"] < 0.02 < 0.25 < far["population_stability_index"]
    assert near["two_sample_kolmogorov_smirnov_test"] > 0.01 > far["two_sample_kolmogorov_smirnov_test"]


def test_categories_drift_by_frequency():
    ref = ["a"] * 500 + ["b"] * 500
    metrics = ("jensen_shannon_distance", "population_stability_index", "pearsons_chi_squared_test")
    same = drift.categorical_drift(ref, ["a"] * 250 + ["b"] * 250, metrics)
    assert same["jensen_shannon_distance"] == pytest.approx(0, abs=1e-9)
    assert same["pearsons_chi_squared_test"] == pytest.approx(1.0)
    skewed = drift.categorical_drift(ref, ["a"] * 450 + ["b"] * 50 + ["c"] * 10, metrics)
    assert skewed["jensen_shannon_distance"] > 0.3 and skewed["pearsons_chi_squared_test"] < 1e-6


def test_quality_counts_nulls_wrong_types_and_values_out_of_the_references_range():
    ref = [0.0, 1.0, 2.0, 3.0]
    prod = [None, float("nan"), "oops", 1.5, 2.5, 10.0, -1.0, 2.0]
    q = drift.quality(ref, prod, True, ("null_value_rate", "data_type_error_rate", "out_of_bounds_rate"))
    assert q == {"null_value_rate": 2 / 8, "data_type_error_rate": 1 / 6, "out_of_bounds_rate": 2 / 5}
    cats = drift.quality(["x", "y"], ["x", "z", None, 1.5], False, ("out_of_bounds_rate", "data_type_error_rate"))
    assert cats == {"out_of_bounds_rate": 1 / 2, "data_type_error_rate": 1 / 3}


def test_no_production_data_gives_no_value():
    out = drift.numerical_drift(np.array([1.0, 2.0]), np.array([]), ("jensen_shannon_distance",))
    assert math.isnan(out["jensen_shannon_distance"])
    assert drift.is_numerical([None, 1, 2.5]) and not drift.is_numerical(["a", 1]) and not drift.is_numerical([True])
