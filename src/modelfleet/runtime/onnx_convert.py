"""A scikit-learn model converted to ONNX (skl2onnx) and run by onnxruntime, cached per model version.

Conversion costs from milliseconds (a linear pipeline) to a second (a large forest) and imports
skl2onnx (~0.25 s), so it happens once per model version and input type: the graph is written
into the fast-path cache beside the model's stored files (`<store>/fast_path/<model sha256>/`,
temp file + rename), named by what produced it (converter, scikit-learn and input type), and a
replica that starts again reads it from there. The converter runs in a short-lived child forked
for the conversion (`convert`): skl2onnx and onnx, ~30 MiB, never stay in a replica or a shared
worker, which keep only onnxruntime.

Two input types are tried: float64 (exact for linear models and scalers) and float32 (what
scikit-learn's trees compare in: they cast their input to float32 themselves).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

INPUT_TYPES = ("double", "float")


class Unsupported(Exception):
    """The model cannot be converted, or its graph cannot run. `lasting`: the converter itself
    said no, which the same converter will say again (not a child that died)."""

    def __init__(self, message: str, lasting: bool = True):
        super().__init__(message)
        self.lasting = lasting


def _cache_name(model_file: Path, input_type: str) -> str:
    import sklearn
    try:
        from importlib.metadata import version
        converter = version("skl2onnx")
    except Exception:
        converter = "?"
    key = f"{model_file.name}|{input_type}|skl2onnx {converter}|sklearn {sklearn.__version__}"
    return f"{input_type}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.onnx"


def convert(model, n_features: int, input_type: str) -> bytes:
    """The graph's bytes, converted in a child process that exits afterwards (the model is
    shared with it by fork: nothing is pickled). Unsupported if it cannot be converted."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:   # the child: convert, write the answer, exit without running the parent's atexit
        code = 0
        try:
            os.close(read_end)
            try:
                answer = b"\x00" + _convert(model, n_features, input_type)
            except Unsupported as e:
                answer = b"\x01" + str(e).encode()
            except BaseException as e:   # MemoryError under a memory limit, anything of the converter's
                answer = b"\x01" + f"the converter failed: {type(e).__name__}: {str(e)[:200]}".encode()
            with os.fdopen(write_end, "wb") as out:
                out.write(answer)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        with os.fdopen(read_end, "rb") as answers:
            answer = answers.read()
    finally:
        _, status = os.waitpid(pid, 0)
    if not answer:
        raise Unsupported(f"the converter process exited without an answer (wait status {status})", lasting=False)
    if answer[:1] == b"\x01":
        raise Unsupported(answer[1:].decode("utf-8", "replace"))
    return answer[1:]


def _convert(model, n_features: int, input_type: str) -> bytes:
    try:
        import skl2onnx
        from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
        from sklearn.base import is_classifier
    except ImportError as e:
        raise Unsupported(f"skl2onnx is not installed ({e.name}); install modelfleet[fast]") from None
    kind = DoubleTensorType if input_type == "double" else FloatTensorType
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    options = {id(final): {"zipmap": False}} if is_classifier(final) else None
    try:
        graph = skl2onnx.to_onnx(model, initial_types=[("X", kind([None, n_features]))], options=options)
    except Exception as e:   # skl2onnx raises many kinds: a missing converter, an option, a shape
        raise Unsupported(f"skl2onnx cannot convert it: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
    return graph.SerializeToString()


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def graph_bytes(model, model_file: Path, n_features: int, input_type: str, cache: Path | None) -> tuple[bytes, bool]:
    """The ONNX graph of `model` taking `input_type` rows: (bytes, whether it came from the cache).
    A refusal of the converter is cached too (`.unsupported`, its reason), so that a shared worker
    reloading an evicted model does not fork a converter again for the same answer."""
    path = cache / _cache_name(model_file, input_type) if cache is not None else None
    if path is not None:
        try:
            return path.read_bytes(), True
        except OSError:
            pass
        try:
            raise Unsupported(path.with_suffix(".unsupported").read_text())
        except OSError:
            pass
    try:
        data = convert(model, n_features, input_type)
    except Unsupported as e:
        if path is not None and e.lasting:
            _cache(path.with_suffix(".unsupported"), str(e).encode())
        raise
    if path is not None:
        _cache(path, data)
    return data, False


def _cache(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(path, data)
    except OSError:
        pass   # a read-only store: the next start converts again, nothing worse


class Session:
    """One ONNX graph: outputs by position (label then probabilities, or the values)."""

    def __init__(self, data: bytes, input_type: str):
        import numpy as np
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1   # one model call at a time per process; no thread pool to wake
        opts.inter_op_num_threads = 1
        opts.enable_cpu_mem_arena = False   # no arena kept per model: a shared worker measures and budgets model bytes
        try:
            self.session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise Unsupported(f"onnxruntime cannot run the converted graph: {str(e).splitlines()[0][:200]}") from None
        self.input = self.session.get_inputs()[0].name
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.dtype = np.dtype(np.float64 if input_type == "double" else np.float32)
        self.input_type = input_type

    def run(self, x, names: list[str] | None = None) -> list:
        return self.session.run(names, {self.input: x})
