"""The metrics of Azure's model monitors, per feature, with numpy and scipy.

Drift compares a production column with the reference column:
- jensen_shannon_distance: the Jensen-Shannon distance (base 2, in [0, 1]) of the two histograms
  (numerical: 20 bins over the range both share; categorical: the categories' frequencies);
- normalized_wasserstein_distance: the Wasserstein distance divided by the reference's standard
  deviation (so that a threshold means "this many standard deviations of shift");
- population_stability_index: sum((p - r) * ln(p / r)) over the reference's deciles (numerical)
  or the categories, with empty bins counted as 0.0001;
- two_sample_kolmogorov_smirnov_test, pearsons_chi_squared_test: p-values (drift when small).
Quality looks at the production column alone, with the reference telling what is expected:
- null_value_rate: nulls (None, NaN) over rows;
- data_type_error_rate: values that are not of the reference's kind (text in a numerical column,
  numbers in a categorical one) over non-null values;
- out_of_bounds_rate: numerical values outside the reference's [min, max], or categories the
  reference never had, over valid values.
"""

from __future__ import annotations

import math

import numpy as np

BINS = 20
EPS = 1e-4


def is_numerical(values: list) -> bool:
    """A column is numerical when its non-null values are numbers (booleans are categories)."""
    seen = False
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return False
        seen = True
    return seen


def numbers(values: list) -> np.ndarray:
    return np.array([v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)
                     and not math.isnan(v)], dtype=float)


def categories(values: list) -> list[str]:
    return [str(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


def _jsd(p: np.ndarray, q: np.ndarray) -> float:
    from scipy.spatial.distance import jensenshannon
    if p.sum() == 0 or q.sum() == 0:
        return float("nan")
    return float(jensenshannon(p, q, base=2))


def _psi(p: np.ndarray, q: np.ndarray) -> float:
    p = np.maximum(p / max(p.sum(), 1), EPS)
    q = np.maximum(q / max(q.sum(), 1), EPS)
    return float(np.sum((q - p) * np.log(q / p)))


def numerical_drift(ref: np.ndarray, prod: np.ndarray, metrics) -> dict[str, float]:
    out = {}
    if len(ref) == 0 or len(prod) == 0:
        return {m: float("nan") for m in metrics}
    if "jensen_shannon_distance" in metrics:
        lo, hi = min(ref.min(), prod.min()), max(ref.max(), prod.max())
        edges = np.linspace(lo, hi if hi > lo else lo + 1, BINS + 1)
        out["jensen_shannon_distance"] = _jsd(np.histogram(ref, edges)[0].astype(float),
                                              np.histogram(prod, edges)[0].astype(float))
    if "normalized_wasserstein_distance" in metrics:
        from scipy.stats import wasserstein_distance
        std = float(ref.std())
        out["normalized_wasserstein_distance"] = float(wasserstein_distance(ref, prod)) / (std if std > 0 else 1.0)
    if "population_stability_index" in metrics:
        edges = np.unique(np.quantile(ref, np.linspace(0, 1, 11)))
        edges[0], edges[-1] = -np.inf, np.inf
        if len(edges) < 3:
            edges = np.array([-np.inf, float(ref[0]), np.inf])
        out["population_stability_index"] = _psi(np.histogram(ref, edges)[0].astype(float),
                                                 np.histogram(prod, edges)[0].astype(float))
    if "two_sample_kolmogorov_smirnov_test" in metrics:
        from scipy.stats import ks_2samp
        out["two_sample_kolmogorov_smirnov_test"] = float(ks_2samp(ref, prod).pvalue)
    return out


def categorical_drift(ref: list[str], prod: list[str], metrics) -> dict[str, float]:
    if not ref or not prod:
        return {m: float("nan") for m in metrics}
    cats = sorted(set(ref) | set(prod))
    index = {c: i for i, c in enumerate(cats)}
    r = np.bincount([index[c] for c in ref], minlength=len(cats)).astype(float)
    p = np.bincount([index[c] for c in prod], minlength=len(cats)).astype(float)
    out = {}
    if "jensen_shannon_distance" in metrics:
        out["jensen_shannon_distance"] = _jsd(r, p)
    if "population_stability_index" in metrics:
        out["population_stability_index"] = _psi(r, p)
    if "pearsons_chi_squared_test" in metrics:
        from scipy.stats import chi2_contingency
        keep = (r + p) > 0
        table = np.vstack([r[keep], p[keep]])
        out["pearsons_chi_squared_test"] = 1.0 if table.shape[1] < 2 else float(chi2_contingency(table)[1])
    return out


def quality(ref_values: list, prod_values: list, numerical: bool, metrics) -> dict[str, float]:
    n = len(prod_values)
    if n == 0:
        return {m: float("nan") for m in metrics}
    nulls = sum(1 for v in prod_values if v is None or (isinstance(v, float) and math.isnan(v)))
    present = [v for v in prod_values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if numerical:
        valid = [v for v in present if isinstance(v, (int, float)) and not isinstance(v, bool)]
        ref = numbers(ref_values)
        lo, hi = (ref.min(), ref.max()) if len(ref) else (-math.inf, math.inf)
        outside = sum(1 for v in valid if v < lo or v > hi)
    else:
        valid = [v for v in present if isinstance(v, (str, bool, int))]
        known = set(categories(ref_values))
        outside = sum(1 for v in valid if str(v) not in known)
    out = {"null_value_rate": nulls / n,
           "data_type_error_rate": (len(present) - len(valid)) / len(present) if present else 0.0,
           "out_of_bounds_rate": outside / len(valid) if valid else 0.0}
    return {m: out[m] for m in metrics}
