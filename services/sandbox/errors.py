"""Miro's error bodies: ``{"type": "error", "status", "code", "message", "context"}``.

Views raise :class:`ApiError`; one handler turns it into the JSON Miro sends. ``context`` is always
an object (the spec's ``Error.context`` is ``type: object``), ``{"fields": [...]}`` for a 400.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error answer, in Miro's words."""

    def __init__(self, status: int, code: str, message: str, context: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.context = context or {}

    def body(self) -> dict[str, Any]:
        return {"type": "error", "status": self.status, "code": self.code, "message": self.message, "context": self.context}


def invalid(field: str, message: str, reason: str = "invalid") -> ApiError:
    """400 ``invalidParameters`` naming one field, as Miro's ``context.fields[]`` does."""
    return ApiError(400, "invalidParameters", f"Invalid parameters: {message}",
                    {"fields": [{"field": field, "reason": reason, "message": message}]})


def not_found(what: str) -> ApiError:
    return ApiError(404, "notFound", f"{what} not found")


def token_not_provided() -> ApiError:
    return ApiError(401, "tokenNotProvided", "No authorization token was provided")


def token_not_found() -> ApiError:
    return ApiError(401, "tokenNotFound", "Authorization token is invalid or revoked")


def insufficient_permissions(scope: str) -> ApiError:
    return ApiError(403, "insufficientPermissions", f"Insufficient permissions: this operation needs the {scope} scope",
                    {"requiredScopes": [scope]})


def too_many_requests() -> ApiError:
    return ApiError(429, "tooManyRequests", "Request rate limit exceed")


INJECTED_CODES = {429: "tooManyRequests", 500: "internalError", 502: "badGateway", 503: "serviceUnavailable",
                  504: "gatewayTimeout"}


def injected(status: int) -> ApiError:
    """The answer of a fault window (`/_sandbox/faults`), shaped like Miro's own."""
    if status == 429:
        return too_many_requests()
    return ApiError(status, INJECTED_CODES.get(status, "error"), "An internal error occurred (injected by the sandbox)")
