"""The single mapping from attestd errors to HTTP status codes and MAA's CloudError bodies
(maa-compat.md §1.6): ``{"error": {"code", "message", "innererror": {"code", "message"}}}``."""

from __future__ import annotations

from attestd.errors import (
    AttestdError,
    CollateralError,
    ConfigurationError,
    EvidenceError,
    PolicyDocumentError,
    PolicyError,
    PolicyParsingError,
    PolicySignatureInvalid,
)

__all__ = ["cloud_error", "status_and_code"]


def status_and_code(exc: AttestdError) -> tuple[int, str]:
    """HTTP status and MAA error code for an error."""
    from attestd.service import (
        InvalidRequest,
        NotAuthorized,
        OperationNotAllowed,
        PolicyEvaluationFailed,
    )

    if isinstance(exc, NotAuthorized):
        return 401, "Unauthorized"
    if isinstance(exc, PolicyEvaluationFailed):
        return 400, "PolicyEvaluationError"
    if isinstance(exc, PolicyParsingError):
        return 400, "PolicyParsingError"
    if isinstance(exc, PolicyDocumentError | OperationNotAllowed):
        return 400, "InvalidOperation"
    if isinstance(exc, PolicySignatureInvalid | PolicyError):
        return 400, "InvalidOperation"
    if isinstance(exc, InvalidRequest | EvidenceError):
        return 400, "InvalidParameter"
    if isinstance(exc, CollateralError):
        return 503, exc.code  # the service cannot judge now; the evidence may be fine
    if isinstance(exc, ConfigurationError):
        return 500, "ConfigurationError"
    if exc.code == "StorageError":
        return 503, "StorageError"
    return 500, "InternalError"


def cloud_error(code: str, message: str, detail_code: str | None = None) -> dict[str, object]:
    inner = detail_code or code
    return {
        "error": {
            "code": code,
            "message": message,
            "innererror": {"code": inner, "message": message},
        }
    }
