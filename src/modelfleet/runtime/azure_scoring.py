"""Azure's scoring helpers in a score.py, called as Azure's inference server calls them.

A score.py written for Azure may use, from the packages Azure's inference images carry
(`azureml-inference-server-http`, `inference-schema`; curated.py puts them in an environment):

- `@input_schema(name, NumpyParameterType(...))` / `@output_schema(...)` (inference_schema): run()
  is called with the request's JSON object as keyword arguments (`run(data=...)`), which the
  decorators convert to numpy arrays, DataFrames, ...; the schema becomes the deployment's V2
  tensors and its request body in `/docs`.
- `@rawhttp` (azureml.contrib.services.aml_request): run() gets the request as a Flask request
  (POST, JSON body) and may answer an `AMLResponse` (its status and body are the answer's).
- otherwise run(raw_data) gets the body as a string, as before.

Nothing here is imported unless the script's environment has those packages.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import logging
import sys

RAW, SCHEMA, STRING = "raw", "schema", "string"
HEADERS_PARAMETER = "request_headers"   # Azure passes the request's headers to a run() that takes it


def alias_contrib_services() -> None:
    """`azureml.contrib.services.aml_request`/`aml_response` as Azure's inference server provides
    them (its package aliases its own modules under those names when imported)."""
    if importlib.util.find_spec("azureml_inference_server_http") is not None:
        importlib.import_module("azureml_inference_server_http.server")


def log_to_stdout() -> None:
    """score.py's `logging.info(...)` reaches the replica log (get-logs), unless it set up logging
    itself. In Python's own basicConfig format: a score.py whose init() calls basicConfig (a no-op
    once the root logger has a handler) reads as it always did."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter(logging.BASIC_FORMAT))
        root.addHandler(handler)
        root.setLevel(logging.INFO)


def call_style(run) -> str:
    raw = sys.modules.get("azureml_inference_server_http.api.aml_request")
    schema = sys.modules.get("inference_schema.schema_util")
    decorated = schema is not None and schema.is_schema_decorated(run)
    if raw is not None and getattr(raw, "_rawHttpRequested", False):
        if decorated:
            raise TypeError("run() cannot be decorated with both @rawhttp and @input_schema")
        return RAW
    return SCHEMA if decorated else STRING


class AzureRun:
    """run() of a score.py, called with one request body in the way its decorators ask for."""

    def __init__(self, run, bad_input: type[Exception]):
        self.run = run
        self.style = call_style(run)
        self.bad_input = bad_input
        params = list(inspect.signature(run).parameters.values())
        self.headers = any(p.name == HEADERS_PARAMETER for p in params)
        self.params = [p for p in params if p.name != HEADERS_PARAMETER]
        if not self.params:
            raise TypeError("run() needs to accept an argument for input data")

    @property
    def first(self) -> str:
        return self.params[0].name

    def __call__(self, body: bytes):
        """run()'s answer; an AMLResponse becomes its body (an error status raises)."""
        extra = {HEADERS_PARAMETER: {"Content-Type": "application/json"}} if self.headers else {}
        if self.style == STRING:
            text = body.decode("utf-8", "replace")
            return self.run(text, **extra) if extra else self.run(text)
        if self.style == RAW:
            return self._response(self.run(**{self.first: _flask_request(body)}, **extra))
        try:
            doc = json.loads(body)
        except ValueError as e:
            raise self.bad_input(f"request body is not valid JSON: {e}") from None
        if not isinstance(doc, dict):
            raise self.bad_input("request body must be a JSON object (run() is decorated with @input_schema)")
        args = {}
        for p in self.params:
            value = doc.get(p.name, p.default)
            if value is inspect.Parameter.empty:
                raise self.bad_input(f"a value is not provided for the {p.name!r} parameter")
            args[p.name] = value
        return self.run(**args, **extra)

    def _response(self, answer):
        status = getattr(answer, "status_code", None)
        if status is None or not hasattr(answer, "get_data"):
            return answer
        data = answer.get_data()
        if 400 <= status < 500:
            raise self.bad_input(data.decode("utf-8", "replace") or f"run() answered {status}")
        if status >= 500:
            raise RuntimeError(f"run() answered {status}: {data.decode('utf-8', 'replace')}")
        return RawAnswer(data)

    def schema(self) -> dict | None:
        """The swagger schemas of run()'s input and output, when it is schema decorated."""
        util = sys.modules.get("inference_schema.schema_util")
        if self.style != SCHEMA or util is None:
            return None
        return {"input": util.get_input_schema(self.run), "output": util.get_output_schema(self.run)}


class RawAnswer(bytes):
    """An AMLResponse's body: the answer as it is, not encoded again as JSON."""


def _flask_request(body: bytes):
    from flask import Request
    from werkzeug.test import EnvironBuilder
    return Request(EnvironBuilder(method="POST", data=body, content_type="application/json").get_environ())


# -- V2 tensors from a swagger schema ----------------------------------------------------------

_LEAF = {("number", "double"): "FP64", ("number", "float"): "FP32", ("number", None): "FP64",
         ("integer", "int64"): "INT64", ("integer", "int32"): "INT32", ("integer", None): "INT64",
         ("boolean", None): "BOOL", ("string", None): "BYTES"}


def _tensor(name: str, swagger: dict, example=None) -> dict:
    """A tensor of the rows a parameter takes: its first dimension any size, the others as its
    example has them; an object of rows (a DataFrame's records) is one column per field."""
    shape, node = [], swagger
    example = swagger.get("example", example)
    while node.get("type") == "array":
        shape.append(-1 if not shape else (len(example) if isinstance(example, list) and example else -1))
        example = example[0] if isinstance(example, list) and example else None
        node = node.get("items") or {}
    if shape and node.get("type") == "object" and isinstance(node.get("properties"), dict):   # DataFrame rows
        kinds = {_LEAF.get((p.get("type"), p.get("format")), _LEAF.get((p.get("type"), None), "BYTES"))
                 for p in node["properties"].values() if isinstance(p, dict)}
        return {"name": name, "datatype": kinds.pop() if len(kinds) == 1 else "BYTES",
                "shape": [*(shape or [-1]), len(node["properties"])]}
    datatype = _LEAF.get((node.get("type"), node.get("format")), _LEAF.get((node.get("type"), None), "BYTES"))
    return {"name": name, "datatype": datatype, "shape": shape or [1]}


def v2_metadata(schema: dict) -> dict:
    """V2 tensors: one input per run() parameter the schema names, one output `output`."""
    given = schema.get("input") or {}
    examples = given.get("example") if isinstance(given.get("example"), dict) else {}
    inputs = [_tensor(name, s, examples.get(name)) for name, s in (given.get("properties") or {}).items()
              if isinstance(s, dict)]
    out = schema.get("output") or {}
    outputs = [_tensor("output", out)] if out else []
    return {"inputs": inputs, "outputs": outputs}
