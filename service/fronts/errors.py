from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Raised by endpoints; mapped once to a JSON error response by the app."""

    def __init__(
        self,
        status_code: int,
        error: str,
        detail: str,
        headers: dict[str, str] | None = None,
        *,
        facts: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.error = error
        self.detail = detail
        self.headers = headers or {}
        self.facts = facts or {}  # what a client needs to act on the error, beside the detail

    @property
    def document(self) -> dict[str, Any]:
        return {"error": self.error, "detail": self.detail, **self.facts}


PARAMETER_NAME_SHOWN_MAX = 60  # an error names the parameter, never echoes a kilobyte of it


def bad_parameter(name: str, problem: str) -> ApiError:
    shown = name if len(name) <= PARAMETER_NAME_SHOWN_MAX else name[:PARAMETER_NAME_SHOWN_MAX] + "…"
    return ApiError(400, "bad_parameter", f"{shown}: {problem}")


def unknown_invoice(invoice_number: str, organization_id: str | None, when: str = "") -> ApiError:
    where = "" if organization_id is None else f" of organization {organization_id!r}"
    detail = f"no invoice {invoice_number!r}{where} in the ledger{when}"
    return ApiError(404, "unknown_invoice", detail)


def ambiguous_invoice(invoice_number: str, organization_ids: list[str]) -> ApiError:
    return ApiError(
        409,
        "ambiguous_invoice",
        f"invoice {invoice_number!r} exists in {len(organization_ids)} organizations:"
        " name one with organizationId",
        facts={"organizationIds": organization_ids},
    )
