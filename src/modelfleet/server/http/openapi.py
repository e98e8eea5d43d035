"""The OpenAPI document behind `/docs`: the control API (which FastAPI describes itself) plus the
routes the gateway serves, scoring and the Open Inference Protocol v2, and `/metrics`,
with the two credentials as security schemes so `/docs` can call every route ("Authorize").
Swagger UI's files ship in the wheel (fastapi-offline), so `/docs` works offline."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from .auth import PREFIXED
from .permissions import permission

DESCRIPTION = """One modelfleet workspace server: the control API under `/api` (an API token, checked
against the Azure action each route names in `x-permission`) and the
gateway, `POST /endpoints/{endpoint}/score` and the Open Inference Protocol v2 under `/v2`
(endpoint key). Metrics for Prometheus at `/metrics`; a dashboard at [/dashboard](/dashboard/).

Credentials: a user's or service principal's token (`fleet user create`, `fleet token create`;
the first admin's in the workspace's `first-admin.token`, the launcher's in `run/server.json`);
endpoint keys come from `fleet online-endpoint get-credentials`."""

SECURITY_SCHEMES = {
    "token": {"type": "http", "scheme": "bearer",
              "description": "An API token of a user or service principal: `Authorization: Bearer <token>`; "
                             "what it may do is its roles at the route's scope (`x-permission`)."},
    "endpointKey": {"type": "http", "scheme": "bearer",
                    "description": "A key of the endpoint (primary or secondary): `Authorization: Bearer <key>`. "
                                   "Not needed by endpoints with auth_mode none."},
}

ERROR = {"type": "object", "properties": {
    "error": {"type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
    "request_id": {"type": "string"}}}
V2_ERROR = {"type": "object", "properties": {"error": {"type": "string"}, "code": {"type": "string"},
                                             "request_id": {"type": "string"}}}
TENSOR = {"type": "object", "required": ["name", "shape", "datatype", "data"], "properties": {
    "name": {"type": "string"}, "shape": {"type": "array", "items": {"type": "integer"}},
    "datatype": {"type": "string", "example": "FP32"}, "parameters": {"type": "object"},
    "data": {"type": "array", "items": {}}}}
V2_REQUEST = {"type": "object", "required": ["inputs"], "properties": {
    "id": {"type": "string"}, "parameters": {"type": "object"}, "inputs": {"type": "array", "items": TENSOR},
    "outputs": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}}},
    "example": {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}}
V2_RESPONSE = {"type": "object", "properties": {
    "model_name": {"type": "string"}, "model_version": {"type": "string"}, "id": {"type": "string"},
    "outputs": {"type": "array", "items": TENSOR}}}

_STATUSES = {"400": "The body could not be turned into model input.", "401": "Missing or invalid key.",
             "404": "No such endpoint or deployment.", "408": "Timed out (request_timeout_ms).",
             "413": "Body larger than max_body_bytes.", "424": "The model (or score.py) raised.",
             "429": "The deployment's queue is full.", "502": "The replica exited while answering.",
             "503": "No deployment takes traffic, or none is ready."}


def _json(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(schema: dict) -> dict:
    return {code: {"description": text, **_json(schema)} for code, text in _STATUSES.items()}


def _path_param(name: str, text: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}, "description": text}


ENDPOINT = _path_param("endpoint", "The online endpoint.")
MODEL = _path_param("model", "The online endpoint (V2's model name).")
VERSION = _path_param("version", "A deployment of the endpoint (V2's model version).")
KEY = [{"endpointKey": []}, {}]   # {}: an endpoint with auth_mode none


def _gateway_paths() -> dict:
    score = {
        "tags": ["scoring"], "summary": "Score a request (Azure ML's scoring URI)", "operationId": "score",
        "description": "The body goes to the model as it is: `{\"data\": rows}` (also `input_data`, `inputs`) "
                       "for no-code models, anything your `run(raw_data)` accepts for a score.py. The "
                       "deployment is chosen by traffic weight unless the header names one (even at 0%).",
        "security": KEY,
        "parameters": [ENDPOINT, {"name": "azureml-model-deployment", "in": "header", "required": False,
                                  "schema": {"type": "string"}, "description": "Send to this deployment."}],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {}, "example": {"data": [[5.1, 3.5, 1.4, 0.2]]}}}},
        "responses": {"200": {"description": "The model's answer (JSON); header azureml-model-deployment "
                                             "names the deployment that answered.", **_json({})},
                      **_errors(ERROR)}}
    infer = {"tags": ["Open Inference Protocol v2"], "security": KEY,
             "requestBody": {"required": True, **_json(V2_REQUEST)},
             "responses": {"200": {"description": "Inference response.", **_json(V2_RESPONSE)},
                           **_errors(V2_ERROR)}}

    def v2(summary: str, op_id: str, params: list, security=None, schema: dict | None = None, **extra) -> dict:
        op = {"tags": ["Open Inference Protocol v2"], "summary": summary, "operationId": op_id,
              "parameters": params, "responses": {"200": {"description": "OK", **_json(schema or {})}}, **extra}
        if security is not None:
            op["security"] = security
        return op

    ready = {"type": "object", "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}}}
    return {
        "/endpoints/{endpoint}/score": {"post": score},
        "/v2": {"get": v2("Server metadata", "v2_server_metadata", [], [])},
        "/v2/health/live": {"get": v2("Server liveness", "v2_live", [], [])},
        "/v2/health/ready": {"get": v2("Server readiness (every endpoint restored)", "v2_ready", [], [])},
        "/v2/models/{model}": {"get": v2("Model metadata", "v2_model_metadata", [MODEL], KEY)},
        "/v2/models/{model}/ready": {"get": v2("Model readiness", "v2_model_ready", [MODEL], KEY, ready)},
        "/v2/models/{model}/infer": {"post": {**infer, "summary": "Inference (deployment by traffic weight)",
                                              "operationId": "v2_infer", "parameters": [MODEL]}},
        "/v2/models/{model}/versions/{version}": {
            "get": v2("Model metadata of one deployment", "v2_version_metadata", [MODEL, VERSION], KEY)},
        "/v2/models/{model}/versions/{version}/ready": {
            "get": v2("Readiness of one deployment", "v2_version_ready", [MODEL, VERSION], KEY, ready)},
        "/v2/models/{model}/versions/{version}/infer": {
            "post": {**infer, "summary": "Inference on one deployment", "operationId": "v2_version_infer",
                     "parameters": [MODEL, VERSION]}},
        "/metrics": {"get": {
            "tags": ["observability"], "summary": "Prometheus metrics", "operationId": "metrics",
            "description": "Open when the server listens on loopback (configurable: fleet server configure "
                           "--metrics-auth); a token allowed workspaces/read otherwise.",
            "security": [{"token": []}, {}],
            "responses": {"200": {"description": "Prometheus text format",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
    }


def scoring_schemas(router) -> dict:
    """A scoring path per endpoint whose deployment's score.py declares its input with Azure's
    @input_schema (runtime/azure_scoring.py): the request and answer bodies it takes and gives."""
    paths = {}
    for name, ep in sorted(router.table.endpoints.items()):
        declared = [(d, dep.metadata["schema"]) for d, dep in sorted(ep.deployments.items())
                    if isinstance(dep.metadata, Mapping) and dep.metadata.get("schema")]
        if not declared:
            continue
        deployment, schema = declared[0]
        paths[f"/endpoints/{name}/score"] = {"post": {
            "tags": ["scoring"], "summary": f"Score on {name} (the schema of deployment {deployment})",
            "operationId": f"score_{name}", "security": KEY,
            "requestBody": {"required": True, **_json(schema.get("input") or {})},
            "responses": {"200": {"description": "The model's answer.", **_json(schema.get("output") or {})},
                          **_errors(ERROR)}}}
    return paths


def document(app: FastAPI, router=None) -> None:
    """Make `app.openapi()` return the whole server's document (built once, on first request),
    with the scoring schema of each endpoint whose score.py declares one (as it is now), and serve
    it at /openapi.json. Under a hosted workspace's prefix that page (no token asked) is the API's
    shape only: endpoint names would tell that the workspace exists, and what it serves."""
    def build() -> dict:
        if router is not None:
            return {**whole(), "paths": {**whole()["paths"], **scoring_schemas(router)}}
        return whole()

    def whole() -> dict:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            for path, ops in doc["paths"].items():
                if path.startswith("/api/"):
                    for method, op in ops.items():
                        op["security"] = [{"token": []}]
                        op.setdefault("tags", ["control API"])
                        declared = permission(method.upper(), path)
                        if declared is not None:
                            op["x-permission"] = {"action": declared.action, "scope": declared.scope,
                                                  "role_needed": declared.role_needed}
            doc["paths"].update(_gateway_paths())
            doc.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
            app.openapi_schema = doc
        return app.openapi_schema
    app.openapi = build

    app.router.routes = [r for r in app.router.routes if getattr(r, "path", None) != app.openapi_url]

    @app.get(app.openapi_url, include_in_schema=False)
    async def openapi_json(request: Request) -> JSONResponse:
        doc = whole() if PREFIXED in request.scope else build()
        root = request.scope.get("root_path", "").rstrip("/")
        return JSONResponse({**doc, "servers": [{"url": root}]} if root else doc)
