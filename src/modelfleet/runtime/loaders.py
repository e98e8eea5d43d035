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

from . import azure_scoring, signatures
from .fast_path import DEFAULT as FAST_PATH_DEFAULT

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


_ROW_KEYS = ("data", "input_data", "inputs", "instances", "dataframe_split", "dataframe_records")


def rows_of(body: bytes) -> list:
    """The input rows of a no-code request: {"data"|"input_data"|"inputs": rows} or bare rows.
    pandas' split orientation ({"columns", "index", "data"}, what Azure sends MLflow models)
    gives rows keyed by column name, so named columns reach the model by name."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise BadInput(f"request body is not valid JSON: {e}") from None
    return rows_in(doc)


def rows_in(doc) -> list:
    """The rows of a parsed no-code request body (rows_of's second half: collection parses a
    batch of bodies at once)."""
    if isinstance(doc, dict):
        for key in _ROW_KEYS:
            if key in doc:
                doc = doc[key]
                break
        else:
            raise BadInput('request body must hold "data", "input_data" or "inputs"')
        if isinstance(doc, dict) and "data" in doc:
            doc = _split_rows(doc)
    if not isinstance(doc, list) or not doc:
        raise BadInput("input must be a non-empty list of rows")
    if not isinstance(doc[0], (list, dict)):
        doc = [doc]  # one flat row
    return doc


def _split_rows(frame: dict) -> list:
    data, columns = frame["data"], frame.get("columns")
    if columns is None:
        return data
    if not isinstance(columns, list) or not all(isinstance(c, (str, int)) for c in columns):
        raise BadInput('"columns" must be a list of column names')
    if not isinstance(data, list):
        raise BadInput('"data" must be a list of rows')
    rows = []
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(columns):
            raise BadInput(f"row {i} has {len(row) if isinstance(row, list) else 'no list of'} values "
                           f"for {len(columns)} columns")
        rows.append(dict(zip(columns, row)))
    return rows


def join_columns(columns: list):
    """V2 input tensors, each [N, k], side by side as one [N, sum k] matrix."""
    import numpy as np
    return columns[0] if len(columns) == 1 else np.hstack(columns)


class VectorScorer:
    """No-code types with a vectorized predict: rows of many requests go through one call.

    `outputs` are the model's named outputs for V2 (name -> function of the input matrix), and
    `metadata` its V2 tensors (runtime/signatures.py)."""

    def __init__(self, predict, feature_names=None, *, outputs: dict | None = None, metadata: dict | None = None,
                 fast_path: dict | None = None, row_width: int | None = None):
        self._predict = predict
        self._features = list(feature_names) if feature_names is not None else None
        self.outputs = outputs or {"predict": predict}
        self.metadata = metadata or signatures.empty()
        self.fast_path = fast_path or {"path": "off", "reason": "not a scikit-learn model"}
        # one-row requests are decoded into this buffer: no array allocated per call
        self._row = None
        if row_width:
            import numpy as np
            self._row = np.empty((1, row_width))

    def _ordered(self, rows: list) -> list:
        if isinstance(rows[0], dict):
            names = self._features or list(rows[0])
            try:
                return [[r[n] for n in names] for r in rows]
            except KeyError as e:
                raise BadInput(f"row is missing feature {e.args[0]!r}") from None
            except TypeError:
                raise BadInput("rows must all be objects, or all lists") from None
        return rows

    def _matrix(self, rows: list):
        import numpy as np
        one = self._row
        if one is not None and len(rows) == 1 and type(rows[0]) is list and len(rows[0]) == one.shape[1] \
                and type(rows[0][0]) is not list:
            try:
                one[0] = rows[0]
                return one
            except (ValueError, TypeError):
                pass   # not all numbers: as any other rows, below
        rows = self._ordered(rows)
        try:
            return np.asarray(rows, dtype=float)
        except (ValueError, TypeError):
            return np.asarray(rows, dtype=object)

    def predict_rows(self, rows: list):
        return self._predict(self._matrix(rows))

    def infer(self, columns: list, wanted: list[str]) -> list[tuple[str, object]]:
        """V2: the `wanted` outputs for input tensors `columns` (each [N, k])."""
        import numpy as np
        x = join_columns(columns)
        return [(name, np.asarray(self.outputs[name](x))) for name in wanted]

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


def load_sklearn(model_dir: Path, fast_path=FAST_PATH_DEFAULT) -> VectorScorer:
    """A scikit-learn model, called through the fast path the deployment allows (runtime/fast_path.py)."""
    import joblib
    from . import fast_path as fp
    model_file = _find(model_dir, (".joblib", ".pkl", ".pickle"))
    model = joblib.load(model_file)
    meta = signatures.sklearn(model)
    outputs = fp.model_outputs(model, any(t["name"] == "predict_proba" for t in meta["outputs"]))
    outputs, status = fp.choose(model, outputs, fast_path, model_dir, model_file, rows_of)
    width = getattr(model, "n_features_in_", None) if status.path != "off" else None
    return VectorScorer(outputs["predict"], getattr(model, "feature_names_in_", None), outputs=outputs, metadata=meta,
                        fast_path=status.to_dict(), row_width=width)


class OnnxScorer(VectorScorer):
    """An ONNX graph: V2 outputs are the graph's, and several graph inputs are fed by name."""

    def __init__(self, session):
        import numpy as np
        self._session = session
        self._inputs = session.get_inputs()
        self._dtypes = {i.name: np.dtype(_ONNX_NUMPY.get(i.type, "float32")) for i in self._inputs}
        meta = signatures.onnx(session)
        first = meta["outputs"][0]["name"] if meta["outputs"] else session.get_outputs()[0].name
        super().__init__(lambda x: self._run([first], {self._inputs[0].name: x})[0], metadata=meta,
                         fast_path={"path": "off", "reason": "the model is ONNX already: onnxruntime runs it"})

    def _run(self, names: list[str], feed: dict):
        import numpy as np
        return self._session.run(names, {k: np.asarray(v, dtype=self._dtypes[k]) for k, v in feed.items()})

    def infer(self, columns: list, wanted: list[str]) -> list[tuple[str, object]]:
        return list(zip(wanted, self._run(wanted, {self._inputs[0].name: join_columns(columns)}), strict=True))

    def infer_named(self, tensors: dict, wanted: list[str]) -> list[tuple[str, object]]:
        return list(zip(wanted, self._run(wanted, tensors), strict=True))


_ONNX_NUMPY = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
               "tensor(bool)": "bool", "tensor(string)": "object",
               **{f"tensor({t}{b})": f"{t}{b}" for t in ("int", "uint") for b in (8, 16, 32, 64)}}


def load_onnx(model_dir: Path) -> VectorScorer:
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return OnnxScorer(ort.InferenceSession(str(_find(model_dir, (".onnx",))), opts,
                                           providers=["CPUExecutionProvider"]))


class MlflowScorer(VectorScorer):
    """An MLflow pyfunc: rows go in as a DataFrame named by the signature's columns, with their
    JSON types kept (MLflow checks them against the signature)."""

    def __init__(self, model, fast=(None, None, None)):
        self._model = model
        meta = signatures.mlflow(model)
        sig = model.metadata.signature
        names = sig.inputs.input_names() if sig is not None and not sig.inputs.is_tensor_spec() else None
        self._fast, status, width = fast   # runtime/mlflow_fast.py
        super().__init__(self._predict_frame, names if names and all(names) else None, metadata=meta,
                         fast_path=status, row_width=width if self._fast is not None else None)

    def _frame(self, rows_or_columns, from_columns: bool = False):
        import pandas as pd
        if from_columns:  # V2 tensors: one column per tensor column, each keeping its dtype
            cols = [c[:, j] for c in rows_or_columns for j in range(c.shape[1])]
            names = self._features if self._features and len(self._features) == len(cols) else range(len(cols))
            return pd.DataFrame(dict(zip(names, cols)))
        rows = self._ordered(rows_or_columns)
        try:
            return pd.DataFrame(rows, columns=self._features)
        except (ValueError, AssertionError) as e:
            raise BadInput(f"rows do not fit the model's columns {self._features}: {e}") from None

    def _predict_frame(self, frame):
        out = self._model.predict(frame)
        return out.to_numpy() if hasattr(out, "to_numpy") and not hasattr(out, "columns") else out

    def predict_rows(self, rows: list):
        if self._fast is not None and _numbers_only(rows):   # what MLflow's double columns let through
            x = VectorScorer._matrix(self, rows)
            if x.dtype.kind == "f" and x.ndim == 2 and x.shape[1] == self._row.shape[1]:
                return self._fast(x)
        out = self._predict_frame(self._frame(rows))
        return out.to_numpy() if hasattr(out, "to_numpy") else out

    def infer(self, columns: list, wanted: list[str]) -> list[tuple[str, object]]:
        import numpy as np
        out = self._predict_frame(self._frame(columns, from_columns=True))
        if hasattr(out, "columns") and all(n in out.columns for n in wanted):
            return [(n, out[n].to_numpy()) for n in wanted]
        return [(wanted[0], np.asarray(out.to_numpy() if hasattr(out, "to_numpy") else out))]


def _numbers_only(rows: list) -> bool:
    """Every value a JSON number (no strings, which numpy would parse, nor booleans)."""
    return all(type(v) is float or type(v) is int
               for r in rows for v in (r.values() if type(r) is dict else r if type(r) is list else (None,)))


def load_mlflow(model_dir: Path, fast_path=FAST_PATH_DEFAULT) -> VectorScorer:
    import mlflow.pyfunc
    from . import mlflow_fast
    root = _find(model_dir, ("mlmodel",)).parent
    model = mlflow.pyfunc.load_model(str(root))
    return MlflowScorer(model, mlflow_fast.choose(model, model_dir, root, fast_path, rows_of))


class ScriptScorer:
    """An Azure-style score.py: init() once, run(raw_data: str) per request, run_batch optional;
    Azure's decorators on run() are honoured (runtime/azure_scoring.py). A module-level
    `v2_metadata` declares its V2 tensors (runtime/signatures.py), else an @input_schema does."""

    def __init__(self, script: Path):
        azure_scoring.alias_contrib_services()
        azure_scoring.log_to_stdout()
        spec = importlib.util.spec_from_file_location("score", script)
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(script.parent))
        sys.modules["score"] = module
        spec.loader.exec_module(module)
        if not callable(getattr(module, "run", None)) and not callable(getattr(module, "run_batch", None)):
            raise AttributeError(f"{script.name} defines neither run(raw_data) nor run_batch(list_of_raw)")
        run = getattr(module, "run", None)
        self._run = azure_scoring.AzureRun(run, BadInput) if callable(run) else None
        schema = self._run.schema() if self._run is not None else None
        if hasattr(module, "v2_metadata"):
            self.metadata = signatures.declared(module.v2_metadata, script.name)
        elif schema is not None:
            self.metadata = {**azure_scoring.v2_metadata(schema), "schema": schema}
        else:
            self.metadata = signatures.empty()
        self.fast_path = {"path": "off", "reason": "a scoring script calls the model"}
        if callable(getattr(module, "init", None)):
            module.init()
        self._run_batch = getattr(module, "run_batch", None)

    def _answer(self, body: bytes) -> bytes | Exception:
        try:
            out = self._run(body)
        except BadInput as e:
            return e
        return bytes(out) if isinstance(out, azure_scoring.RawAnswer) else to_json(out)

    def score(self, bodies: list[bytes]) -> list[bytes | Exception]:
        if self._run_batch is not None and (len(bodies) > 1 or self._run is None):
            raws = [b.decode("utf-8", "replace") for b in bodies]
            outs = self._run_batch(raws)
            if len(outs) != len(raws):
                raise RuntimeError(f"run_batch returned {len(outs)} results for {len(raws)} requests")
            return [to_json(o) for o in outs]
        return [self._answer(b) for b in bodies]

    def infer(self, columns: list, wanted: list[str]) -> list[tuple[str, object]]:
        """V2: run() gets {"data": rows}; an answer that is an object keyed by output names gives
        those outputs (in their declared datatypes), any other answer is the one output."""
        import numpy as np
        rows = join_columns(columns).tolist()
        rows = [[v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in r] for r in rows]
        name = self._run.first if self._run is not None and self._run.style == azure_scoring.SCHEMA else "data"
        answer = self.score([orjson.dumps({name: rows})])[0]
        if isinstance(answer, Exception):
            raise answer
        result = orjson.loads(answer)
        declared = {t["name"]: t["datatype"] for t in self.metadata["outputs"]}
        if isinstance(result, dict) and all(n in result for n in wanted):
            picked = [(n, result[n]) for n in wanted]
        elif len(wanted) == 1:
            picked = [(wanted[0], result)]
        else:
            raise ValueError(f"run() returned one value, not an object with the outputs {', '.join(wanted)}")
        return [(n, np.asarray(v, dtype=_NUMPY.get(declared.get(n)))) for n, v in picked]


_NUMPY = {"BOOL": "bool", "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64",
          "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64",
          "FP16": "float16", "FP32": "float32", "FP64": "float64", "BYTES": "object"}


def load_scorer(model_type: str, model_dir: Path, scoring_script: Path | None, fast_path=FAST_PATH_DEFAULT):
    """`fast_path`: the deployment's setting (runtime/fast_path.py), for scikit-learn models."""
    if scoring_script is not None:
        if fast_path == "required":
            from .fast_path import Refused
            raise Refused("fast_path: required, but a scoring script calls the model (no fast path applies)")
        return ScriptScorer(scoring_script)
    loaders = {"sklearn": load_sklearn, "onnx": load_onnx, "mlflow": load_mlflow}
    if model_type not in loaders:
        raise ValueError(f"model type {model_type!r} needs a scoring script (--code and --scoring-script)")
    if model_type == "onnx":
        return load_onnx(model_dir)
    return loaders[model_type](model_dir, fast_path)


def set_model_env(model_dir: Path) -> None:
    os.environ["AZUREML_MODEL_DIR"] = str(model_dir)
    os.environ["FLEET_MODEL_DIR"] = str(model_dir)
