"""One error hierarchy for all of modelfleet.

Every boundary maps these the same way: the CLI prints one line and exits with
``exit_code``; the HTTP API answers ``http_status`` with ``{"error": {"code", "message"}}``.

    FleetError                 (1, 500)  root; anything unexpected becomes this
    +-- InvalidInput           (2, 400)  a bad name, field, file or value
    |   +-- SpecError          (2, 400)  a YAML/JSON document that does not validate
    +-- Unauthorized           (1, 401)  a missing or wrong key or token
    +-- Forbidden              (1, 403)  a known caller whose roles do not grant the action
    +-- RateLimited            (1, 429)  too many failed token attempts from one address
    +-- NotFound               (1, 404)  a workspace, model, endpoint or deployment
    +-- AlreadyExists          (1, 409)  an immutable thing registered twice
    +-- Conflict               (1, 409)  a request that the current state forbids
    |   +-- PreconditionFailed (1, 412)  an update based on a version that is no longer current
    |   +-- LeaseLost          (1, 409)  a controller write under a lease another server has taken since
    +-- IntegrityError         (1, 500)  stored bytes no longer match their sha256
    +-- StorageError           (1, 507)  the disk refused a write (full, read-only)
    +-- DatastoreError         (1, 502)  a datastore (Azure Blob) unreachable or refusing its credentials
    +-- ServerUnavailable      (1, 503)  the workspace server cannot be reached
    +-- DeploymentFailed       (1, 500)  replicas did not become ready; old version kept
    +-- BuildFailed            (1, 422)  an environment's packages could not be resolved or installed
"""

from __future__ import annotations


class FleetError(Exception):
    code = "error"
    exit_code = 1
    http_status = 500

    def __init__(self, message: str, *, detail: str | None = None):
        super().__init__(message)
        self.message = message
        self.detail = detail  # long text (a traceback, a log tail) shown below the one line

    def to_dict(self) -> dict:
        body = {"code": self.code, "message": self.message}
        if self.detail:
            body["detail"] = self.detail
        return body


class InvalidInput(FleetError):
    code = "invalid_input"
    exit_code = 2
    http_status = 400


class SpecError(InvalidInput):
    code = "invalid_spec"


class Unauthorized(FleetError):
    code = "unauthorized"
    http_status = 401


class Forbidden(FleetError):
    code, http_status = "forbidden", 403


class RateLimited(FleetError):
    code, http_status = "rate_limited", 429

    def __init__(self, message: str, *, retry_after: int = 1, detail: str | None = None):
        super().__init__(message, detail=detail)
        self.retry_after = retry_after   # seconds, for the Retry-After header


class NotFound(FleetError):
    code = "not_found"
    http_status = 404


class AlreadyExists(FleetError):
    code = "already_exists"
    http_status = 409


class Conflict(FleetError):
    code = "conflict"
    http_status = 409


class PreconditionFailed(Conflict):
    code = "precondition_failed"
    http_status = 412


class LeaseLost(Conflict):
    code = "lease_lost"


class IntegrityError(FleetError):
    code = "integrity_error"


class StorageError(FleetError):
    code = "storage_error"
    http_status = 507


class DatastoreError(FleetError):
    code = "datastore_error"
    http_status = 502


class ServerUnavailable(FleetError):
    code = "server_unavailable"
    http_status = 503


class DeploymentFailed(FleetError):
    code = "deployment_failed"


class BuildFailed(FleetError):
    code = "build_failed"
    http_status = 422


_BY_CODE = {cls.code: cls for cls in (FleetError, InvalidInput, SpecError, Unauthorized, Forbidden, RateLimited, NotFound,
                                       AlreadyExists, Conflict, PreconditionFailed, LeaseLost, IntegrityError, StorageError,
                                       DatastoreError,
                                       ServerUnavailable, DeploymentFailed, BuildFailed)}


def from_dict(body: dict) -> FleetError:
    """Rebuild an error sent over HTTP so the client raises the same class."""
    cls = _BY_CODE.get(body.get("code", "error"), FleetError)
    return cls(body.get("message", "unknown error"), detail=body.get("detail"))
