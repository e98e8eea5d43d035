"""What a replica runs: a scorer built from a model type or an Azure-style score.py.

A scorer turns a list of raw request bodies into a list of answers (bytes of JSON), one per
body, so that dynamic batching and single requests share one code path. A body that cannot be
read raises BadInput; anything the model raises propagates as a model error.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

import orjson

_DUMPS_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class BadInput(ValueError):
    """The request body is not something the model can take."""


def to_json(value: Any) -> bytes:
    try:
        return orjson.dumps(value, option=_DUMPS_OPTS)
    except TypeError:
        # Values orjson does not know (pandas objects, numpy scalars in odd containers).
        if hasattr(value, "tolist"):
            return orjson.dumps(value.tolist(), option=_DUMPS_OPTS)
        return json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)).encode()


def rows_of(body: bytes) -> list:
    """The input rows of a no-code request: {"data"|"input_data"|"inputs": rows} or bare rows."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise BadInput(f"request body is not valid JSON: {e}") from None
    if isinstance(doc, dict):
        for key in ("data", "input_data", "inputs", "instances"):
            if key in doc:
                doc = doc[key]
                break
        else:
            raise BadInput('request body must hold "data", "input_data" or "inputs"')
        if isinstance(doc, dict) and "data" in doc:  # pandas "split" orientation
            doc = doc["data"]
    if not isinstance(doc, list) or not doc:
        raise BadInput("input must be a non-empty list of rows")
    if not isinstance(doc[0], (list, dict)):
        doc = [doc]  # one flat row
    return doc


class VectorScorer:
    """No-code types with a vectorized predict: rows of many requests go through one call."""

    def __init__(self, predict, feature_names=None):
        self._predict = predict
        self._features = list(feature_names) if feature_names is not None else None

    def _matrix(self, rows: list):
        import numpy as np
        if isinstance(rows[0], dict):
            names = self._features or list(rows[0])
            try:
                rows = [[r[n] for n in names] for r in rows]
            except KeyError as e:
                raise BadInput(f"row is missing feature {e.args[0]!r}") from None
        try:
            return np.asarray(rows, dtype=float)
        except (ValueError, TypeError):
            return np.asarray(rows, dtype=object)

    def predict_rows(self, rows: list):
        return self._predict(self._matrix(rows))

    def score(self, bodies: list[bytes]) -> list[bytes | Exception]:
        parsed: list = []
        for b in bodies:
            try:
                parsed.append(rows_of(b))
            except BadInput as e:
                parsed.append(e)
        good = [p for p in parsed if not isinstance(p, Exception)]
        if not good:
            return parsed
        if len(good) == 1:
            results = [self.predict_rows(good[0])]
        else:
            flat = [r for rows in good for r in rows]
            out = self.predict_rows(flat)
            results, pos = [], 0
            for rows in good:
                results.append(out[pos:pos + len(rows)])
                pos += len(rows)
        it = iter(results)
        return [p if isinstance(p, Exception) else to_json(_plain(next(it))) for p in parsed]


def _plain(result):
    return result.tolist() if hasattr(result, "tolist") else result


def _find(model_dir: Path, suffixes: tuple[str, ...]) -> Path:
    found = sorted(p for p in model_dir.rglob("*") if p.is_file() and p.name.lower().endswith(suffixes))
    if not found:
        raise FileNotFoundError(f"no {'/'.join(suffixes)} file under the model directory")
    return found[0]


def load_sklearn(model_dir: Path) -> VectorScorer:
    import joblib
    model = joblib.load(_find(model_dir, (".joblib", ".pkl", ".pickle")))
    return VectorScorer(model.predict, getattr(model, "feature_names_in_", None))


def load_onnx(model_dir: Path) -> VectorScorer:
    import numpy as np
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(_find(model_dir, (".onnx",))), opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    dtype = np.int64 if "int64" in inp.type else np.float32

    def predict(x):
        return sess.run(None, {inp.name: np.asarray(x, dtype=dtype)})[0]
    return VectorScorer(predict)


def load_mlflow(model_dir: Path) -> VectorScorer:
    import mlflow.pyfunc
    root = _find(model_dir, ("mlmodel",)).parent
    model = mlflow.pyfunc.load_model(str(root))

    def predict(x):
        import pandas as pd
        out = model.predict(pd.DataFrame(x))
        return out.to_numpy() if hasattr(out, "to_numpy") else out
    return VectorScorer(predict)


class ScriptScorer:
    """An Azure-style score.py: init() once, run(raw_data: str) per request, run_batch optional."""

    def __init__(self, script: Path):
        spec = importlib.util.spec_from_file_location("score", script)
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(script.parent))
        sys.modules["score"] = module
        spec.loader.exec_module(module)
        if not callable(getattr(module, "run", None)) and not callable(getattr(module, "run_batch", None)):
            raise AttributeError(f"{script.name} defines neither run(raw_data) nor run_batch(list_of_raw)")
        if callable(getattr(module, "init", None)):
            module.init()
        self._run = getattr(module, "run", None)
        self._run_batch = getattr(module, "run_batch", None)

    def score(self, bodies: list[bytes]) -> list[bytes | Exception]:
        raws = [b.decode("utf-8", "replace") for b in bodies]
        if self._run_batch is not None and (len(raws) > 1 or self._run is None):
            outs = self._run_batch(raws)
            if len(outs) != len(raws):
                raise RuntimeError(f"run_batch returned {len(outs)} results for {len(raws)} requests")
            return [to_json(o) for o in outs]
        return [to_json(self._run(r)) for r in raws]


def load_scorer(model_type: str, model_dir: Path, scoring_script: Path | None):
    if scoring_script is not None:
        return ScriptScorer(scoring_script)
    loaders = {"sklearn": load_sklearn, "onnx": load_onnx, "mlflow": load_mlflow}
    if model_type not in loaders:
        raise ValueError(f"model type {model_type!r} needs a scoring script (--code and --scoring-script)")
    return loaders[model_type](model_dir)


def set_model_env(model_dir: Path) -> None:
    os.environ["AZUREML_MODEL_DIR"] = str(model_dir)
    os.environ["FLEET_MODEL_DIR"] = str(model_dir)
