"""The rows a fast path is verified on before it serves (runtime/fast_path.py).

Three sources, all numeric matrices with the model's number of features: the request samples the
user gave (`sample-request*.json` beside the model, or an MLflow model's input example), rows
generated within the training ranges the model exposes (a scaler's means and spreads or minima
and maxima, a one-hot encoder's categories, a tree's split thresholds), and, where a model exposes
nothing, rows drawn at several scales around zero. Split thresholds are probed exactly and one
float32 step either side: where a compiled tree and scikit-learn could disagree, they would
disagree there.
"""

from __future__ import annotations

from pathlib import Path

PROBE_ROWS = 2048      # generated rows; samples come on top
SEED = 20260         # the same probe set on every load of the same model


def _steps(model) -> list:
    """The estimators inside `model`: pipeline steps, column transformers' parts, ensemble members."""
    out, stack = [], [model]
    while stack:
        m = stack.pop()
        out.append(m)
        if hasattr(m, "steps"):
            stack.extend(s for _, s in m.steps if hasattr(s, "fit"))
        if hasattr(m, "transformers_"):
            stack.extend(t for _, t, _ in m.transformers_ if hasattr(t, "fit"))
        if hasattr(m, "estimators_"):
            import numpy as np
            stack.extend(e for e in np.ravel(np.asarray(m.estimators_, dtype=object)) if hasattr(e, "fit"))
    return out


def _first_step(model):
    while hasattr(model, "steps"):
        model = model.steps[0][1]
    return model


def _column_ranges(model, n: int):
    """(low, high) per input column as the first step exposes them, or None where it does not;
    and per column the categories a one-hot encoder knows (or None)."""
    import numpy as np
    low, high, cats = [None] * n, [None] * n, [None] * n
    first = _first_step(model)
    parts = [(first, list(range(n)))]
    if hasattr(first, "transformers_"):
        parts = [(t, list(np.arange(n)[cols]) if not isinstance(cols, str) else [])
                 for _, t, cols in first.transformers_ if t not in ("drop", "passthrough")]
    for est, cols in parts:
        est = _first_step(est)
        if hasattr(est, "data_min_"):                         # MinMaxScaler
            lo, hi = est.data_min_, est.data_max_
        elif hasattr(est, "mean_") and getattr(est, "scale_", None) is not None:   # StandardScaler
            lo, hi = est.mean_ - 3 * est.scale_, est.mean_ + 3 * est.scale_
        elif hasattr(est, "center_") and getattr(est, "scale_", None) is not None:  # RobustScaler
            lo, hi = est.center_ - 3 * est.scale_, est.center_ + 3 * est.scale_
        elif hasattr(est, "categories_"):                     # OneHotEncoder, OrdinalEncoder
            for j, c in zip(cols, est.categories_):
                cats[j] = np.asarray(c)
            continue
        else:
            continue
        for j, a, b in zip(cols, np.ravel(lo), np.ravel(hi)):
            low[j], high[j] = float(a), float(b)
    return low, high, cats


def _thresholds(model, n: int) -> list:
    """Split thresholds per input column of every tree in `model` that reads the raw input."""
    import numpy as np
    out: list = [[] for _ in range(n)]
    if hasattr(model, "steps") and len(model.steps) > 1:
        return out   # the trees see transformed columns, not the request's
    for est in _steps(model):
        tree = getattr(est, "tree_", None)
        if tree is None or not hasattr(tree, "threshold"):
            continue
        split = tree.feature >= 0
        for f, t in zip(tree.feature[split], tree.threshold[split]):
            if f < n:
                out[f].append(t)
    return [np.unique(np.asarray(t, dtype=float)) for t in out]


def generated(model, n: int, rows: int = PROBE_ROWS):
    """`rows` rows within what `model` says about its inputs (see the module's docstring)."""
    import numpy as np
    rng = np.random.default_rng(SEED)
    low, high, cats = _column_ranges(model, n)
    splits = _thresholds(model, n)
    x = np.empty((rows, n))
    scales = np.array([1.0, 10.0, 100.0])
    for j in range(n):
        if cats[j] is not None and cats[j].dtype.kind in "iuf":
            x[:, j] = rng.choice(cats[j].astype(float), rows)
        elif low[j] is not None:
            x[:, j] = rng.uniform(low[j], high[j] if high[j] > low[j] else low[j] + 1.0, rows)
        elif len(splits[j]):
            lo, hi = splits[j][0], splits[j][-1]
            pad = max(hi - lo, 1.0) * 0.25
            x[:, j] = rng.uniform(lo - pad, hi + pad, rows)
        else:  # nothing known: around zero at several scales
            x[:, j] = rng.standard_normal(rows) * rng.choice(scales, rows)
        if len(splits[j]):  # half the rows on a threshold or one float32 step from it
            at = rng.random(rows) < 0.5
            t = rng.choice(splits[j], int(at.sum()))
            t32 = t.astype(np.float32)
            step = rng.integers(0, 4, len(t))
            x[at, j] = np.select([step == 0, step == 1, step == 2],
                                 [t, np.nextafter(t32, np.float32(np.inf)), np.nextafter(t32, np.float32(-np.inf))],
                                 t32).astype(float)
    return x


def samples(model_dir: Path, n: int, rows_of) -> list:
    """Rows of the request samples beside the model: every `sample-request*.json` (a request body,
    as clients send it) and an MLflow model's `input_example.json`; rows that are not `n` numbers
    are left out (they could not take the fast path anyway)."""
    import numpy as np
    found = []
    for path in sorted(model_dir.rglob("*.json")):
        name = path.name.lower()
        if not (name.startswith(("sample-request", "sample_request")) or name == "input_example.json"):
            continue
        try:
            for row in rows_of(path.read_bytes()):
                values = list(row.values()) if isinstance(row, dict) else row
                arr = np.asarray(values, dtype=float)
                if arr.shape == (n,) and np.isfinite(arr).all():
                    found.append(arr)
        except (OSError, ValueError, TypeError):
            continue   # not a sample we can read: the generated rows still probe
    return found
