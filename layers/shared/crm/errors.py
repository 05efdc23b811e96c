"""The one error hierarchy; the API maps it to the error envelope of API.md."""
from __future__ import annotations

from typing import Any


class CRMError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or []
        if code:
            self.code = code


class InvalidInput(CRMError):
    status_code = 422
    code = "validation_error"

    @classmethod
    def for_field(cls, loc: tuple[str | int, ...], msg: str) -> InvalidInput:
        return cls(f"Invalid {'.'.join(map(str, loc))}: {msg}", [{"loc": list(loc), "msg": msg}])


class BadRequest(CRMError):
    status_code = 400
    code = "bad_request"


class Unauthorized(CRMError):
    status_code = 401
    code = "unauthorized"


class Forbidden(CRMError):
    status_code = 403
    code = "forbidden"


class NotFound(CRMError):
    status_code = 404
    code = "not_found"


class Conflict(CRMError):
    status_code = 409
    code = "conflict"


class DependencyUnavailable(CRMError):
    status_code = 503
    code = "dependency_unavailable"


class RetryableRecordError(CRMError):
    """A queued record cannot be applied yet (its customer is missing); the message is redelivered."""


_translated: dict[type[Exception], type[CRMError]] = {}


def translate_as(error_types: tuple[type[Exception], ...], crm_error: type[CRMError]) -> None:
    """Declare that a client library's exceptions mean a CRMError; modules register their own on import."""
    for error_type in error_types:
        _translated[error_type] = crm_error


def translate(exc: Exception) -> CRMError | None:
    for error_type, crm_error in _translated.items():
        if isinstance(exc, error_type):
            return crm_error(f"A dependency is unavailable: {error_type.__module__.split('.')[0]}")
    return None
