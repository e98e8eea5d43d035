"""The fast path: how a replica calls a scikit-learn model, chosen once when it loads the model.

A one-row `predict` costs scikit-learn a few hundred microseconds of input validation and
dispatch (a 100-tree forest, milliseconds); the arithmetic is a few. So, per deployment:

- **onnx**: the model converted with skl2onnx (runtime/onnx_convert.py, cached per model version)
  and run by onnxruntime, used only once its answers on the probe set (runtime/probes.py) match
  scikit-learn's: class labels exactly (as the JSON clients get), probabilities and regression
  values within TOLERANCE (float32 graphs, which trees need, carry 7 significant digits).
- **sklearn-unchecked**: where there is no verified graph, scikit-learn itself with its checks off
  (`assume_finite`, `skip_parameter_validation`).
- **off**: the model's own methods, as before (`fast_path: false`, or not a scikit-learn model).

Either fast path takes only input the runtime has checked: a 2-D float64 (or integer) matrix with
the model's number of columns, every value finite. Anything else (strings, NaN, another width,
V2 FP32 tensors, which scikit-learn would compute in float32) goes to the model's own checked
methods, so errors and answers stay what scikit-learn gives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..domain.model_types import FAST_PATH_DEFAULT as DEFAULT  # noqa: F401  (the setting's default, for replicas)
from . import onnx_convert, probes

TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}   # for float outputs; labels must be equal
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class Refused(RuntimeError):
    """`fast_path: required` and no verified ONNX graph: the replica does not start."""


@dataclass(frozen=True)
class Status:
    path: str     # onnx | sklearn-unchecked | off
    reason: str

    def to_dict(self) -> dict:
        return {"path": self.path, "reason": self.reason}


def cache_dir(model_dir: Path) -> Path | None:
    """Where converted graphs of a model version live: beside its stored files, keyed by the same
    sha256 (`<store>/models/<sha256>` -> `<store>/fast_path/<sha256>`); None for files elsewhere."""
    if model_dir.parent.name != "models" or not _SHA256.match(model_dir.name):
        return None
    return model_dir.parent.parent / "fast_path" / model_dir.name


def model_outputs(model, proba: bool) -> dict[str, Callable]:
    outputs = {"predict": model.predict}
    if proba:
        outputs["predict_proba"] = model.predict_proba
    return outputs


def choose(model, outputs: dict[str, Callable], setting, model_dir: Path, model_file: Path,
           rows_of) -> tuple[dict[str, Callable], Status]:
    """The outputs to serve `model` with (same names as `outputs`, its own methods) and why."""
    if setting is False:
        return outputs, Status("off", "fast_path: false in the deployment")
    n = getattr(model, "n_features_in_", None)
    if not isinstance(n, int) or n < 1:
        return _not_onnx(model, outputs, setting, None, "the model does not say how many features it takes "
                                                        "(n_features_in_)")
    try:
        import numpy as np
        import onnxruntime  # noqa: F401  (the graph's runtime; skl2onnx is needed only on a cache miss)
    except ImportError as e:
        return _not_onnx(model, outputs, setting, n, f"onnxruntime is not installed ({e.name}; install modelfleet[fast])")
    sampled = probes.samples(model_dir, n, rows_of)
    x = np.vstack([probes.generated(model, n), *[np.asarray(s)[None, :] for s in sampled]]) if sampled \
        else probes.generated(model, n)
    try:
        expected = {name: np.asarray(fn(x)) for name, fn in outputs.items()}
    except Exception as e:   # e.g. a model that cannot take rows outside its categories
        return _not_onnx(model, outputs, setting, n, f"scikit-learn itself fails on the probe rows: "
                                                      f"{type(e).__name__}: {str(e)[:160]}")
    problems = []
    for input_type in onnx_convert.INPUT_TYPES:
        try:
            data, cached = onnx_convert.graph_bytes(model, model_file, n, input_type, cache_dir(model_dir))
            session = onnx_convert.Session(data, input_type)
            fast = _onnx_outputs(session, model, outputs, expected)
            mismatch = _mismatch(fast, expected, x.astype(session.dtype))
        except onnx_convert.Unsupported as e:
            if f"{e}" not in problems:
                problems.append(f"{e}")
            continue
        if mismatch is None:
            where = "read from the cache" if cached else "converted"
            samples_note = f" and {len(sampled)} request samples" if sampled else ""
            return ({name: _guarded(fn, outputs[name], n, session.dtype) for name, fn in fast.items()},
                    Status("onnx", f"skl2onnx graph ({input_type} input, {where}) verified against scikit-learn "
                                   f"on {probes.PROBE_ROWS} generated rows{samples_note}: labels equal, values "
                                   f"within rtol {TOLERANCE['rtol']:g}"))
        problems.append(f"{input_type} input: {mismatch}")
    return _not_onnx(model, outputs, setting, n, "; ".join(problems))


def _not_onnx(model, outputs: dict, setting, n: int | None, why: str) -> tuple[dict, Status]:
    if setting == "required":
        raise Refused(f"fast_path: required, but the model has no verified ONNX graph: {why}")
    if n is None:
        return outputs, Status("off", f"no fast path: {why}")
    return ({name: _guarded(_unchecked(fn), fn, n, None) for name, fn in outputs.items()},
            Status("sklearn-unchecked", f"no ONNX graph: {why}"))


def _onnx_outputs(session: onnx_convert.Session, model, outputs: dict, expected: dict) -> dict[str, Callable]:
    """Each of `outputs` as a call of the graph, shaped and typed as scikit-learn answers."""
    import numpy as np
    names = session.outputs
    want = {"predict": names[0]}
    if "predict_proba" in outputs:
        if len(names) < 2:
            raise onnx_convert.Unsupported("the graph has no probabilities output")
        want["predict_proba"] = names[1]
    classes = getattr(model, "classes_", None)
    label_dtype = np.asarray(classes).dtype if classes is not None and np.asarray(classes).dtype.kind in "iub" \
        else None
    made = {}
    for name, output in want.items():
        shape_1d = expected[name].ndim == 1
        as_dtype = label_dtype if name == "predict" and label_dtype is not None else \
            (np.float64 if expected[name].dtype.kind == "f" else None)
        made[name] = _graph_call(session, output, shape_1d, as_dtype)
    return made


def _graph_call(session: onnx_convert.Session, output: str, shape_1d: bool, as_dtype) -> Callable:
    run, feed_name, names = session.session.run, session.input, [output]

    def call(x):
        out = run(names, {feed_name: x})[0]
        if shape_1d and out.ndim == 2:
            out = out.reshape(-1)
        return out if as_dtype is None else out.astype(as_dtype, copy=False)
    return call


def _mismatch(fast: dict, expected: dict, x) -> str | None:
    """Why the graph's answers on the probe rows `x` (in the graph's input type) differ from
    scikit-learn's (None: they agree)."""
    import numpy as np
    import orjson
    as_json = lambda a: orjson.dumps(a.tolist(), option=orjson.OPT_SERIALIZE_NUMPY)  # noqa: E731  as clients get it
    for name, want in expected.items():
        try:
            got = fast[name](x)
        except Exception as e:
            return f"{name} fails in onnxruntime: {type(e).__name__}: {str(e)[:160]}"
        if got.shape != want.shape:
            return f"{name} has shape {list(got.shape)}, scikit-learn gives {list(want.shape)}"
        if want.dtype.kind == "f" and got.dtype.kind == "f":
            close = np.isclose(got, want, **TOLERANCE)
            if not close.all():
                i = int(np.argmin(close.reshape(len(close), -1).all(axis=1)))
                return (f"{name} differs on {int((~close).sum())} values (row {i}: "
                        f"{np.ravel(got[i])[:3].tolist()} vs {np.ravel(want[i])[:3].tolist()})")
        elif as_json(got) != as_json(want):
            differ = int(np.sum(got != want)) if got.shape == want.shape else len(want)
            return f"{name} gives other labels on {differ} of {len(want)} rows"
    return None


def _unchecked(fn: Callable) -> Callable:
    import sklearn
    context = sklearn.config_context

    def call(x):
        with context(assume_finite=True, skip_parameter_validation=True):
            return fn(x)
    return call


def _guarded(fast: Callable, checked: Callable, n: int, dtype) -> Callable:
    """`fast` for input the runtime has checked (see the module's docstring), else `checked`."""
    import numpy as np
    isfinite, f64 = np.isfinite, np.dtype(np.float64)

    def call(x):
        if x.ndim == 2 and x.shape[1] == n and (x.dtype == f64 or x.dtype.kind in "iu"):
            a = x if dtype is None and x.dtype == f64 else x.astype(dtype or f64)
            if isfinite(a).all():
                return fast(a)
        return checked(x)
    return call


# An ONNX graph of one Identity node (double [N, 1] in and out), serialized by onnx's helpers.
_WARM_GRAPH = (b"\x08\x08:>\n\x10\n\x01X\x12\x01Y\"\x08Identity\x12\x04warmZ\x11\n\x01X\x12\x0c\n\n\x08"
               b"\x0b\x12\x06\n\x00\n\x02\x08\x01b\x11\n\x01Y\x12\x0c\n\n\x08\x0b\x12\x06\n\x00\n\x02\x08\x01B\x04\n\x00\x10\r")


def warm() -> None:
    """Run a one-node graph once: what onnxruntime loads on its first session (native libraries,
    kernels) is then the process's own, not the first model's (a shared worker measures each
    model's bytes around its load). The converter is never loaded here: it runs in a child."""
    try:
        import numpy as np
        onnx_convert.Session(_WARM_GRAPH, "double").run(np.arange(4.0).reshape(-1, 1))
    except (ImportError, onnx_convert.Unsupported):
        pass   # no fast path here: nothing to load
