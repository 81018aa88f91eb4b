"""What the sandbox refuses, as Cybersource answers it: each refusal carries its HTTP status
and the documented error body's ``status`` and ``reason``. Endpoints raise; one registered
handler renders the body."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldProblem:
    """One entry of an error body's ``details``: the request field and what is wrong with it."""

    field: str
    reason: str  # MISSING_FIELD or INVALID_DATA


class SandboxRefusal(Exception):
    status_code = 400
    status = "BADREQUEST"
    reason = "VALIDATION_ERRORS"

    def __init__(self, message: str, details: tuple[FieldProblem, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ValidationErrors(SandboxRefusal):
    reason = "VALIDATION_ERRORS"


class ActionNotAllowed(SandboxRefusal):
    """The invoice's state forbids the action (e.g. updating a paid invoice)."""

    reason = "ACTION_NOT_ALLOWED"


class DuplicateRecord(SandboxRefusal):
    """The organization already has an invoice with this number."""

    reason = "DUPLICATE_RECORD"


class NotFound(SandboxRefusal):
    status_code = 404
    status = "NOTFOUND"
    reason = "NOTFOUND"


class InvoiceNotFound(NotFound):
    pass


class TransactionNotFound(NotFound):
    """No payment transaction of the organization has this id (another organization's is
    not found either)."""


class AuthenticationFailed(SandboxRefusal):
    status_code = 401
    status = "UNAUTHORIZED"
    reason = "AUTHENTICATION_FAILED"


class InjectedFault(SandboxRefusal):
    """A 429 or 502 the tests asked for through ``/sandbox/faults``."""

    def __init__(self, status_code: int) -> None:
        super().__init__("injected fault")
        self.status_code = status_code
        if status_code == 429:
            self.status, self.reason = "TOO_MANY_REQUESTS", "TOO_MANY_REQUESTS"
        else:
            self.status, self.reason = "SERVER_ERROR", "SYSTEM_ERROR"
