"""The response documents, shaped as Cybersource documents them: amounts stay Decimals (the
JSON writer prints them as exact numbers); fields the invoice does not have are left out."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from service.sandbox.errors import SandboxRefusal
from service.sandbox.invoice_requests import currency_exponent
from service.sandbox.invoices import (
    HistoryEntry,
    HistoryEvent,
    InvoiceContent,
    LineItem,
    SandboxInvoice,
    TransactionDetailsShown,
)
from service.sandbox.transactions import SandboxTransaction, TransactionDecision

REVIEW_EVENTS = frozenset({HistoryEvent.PENDING, HistoryEvent.REJECTED})


def utc_time(moment: datetime) -> str:
    """``2024-07-24T18:35:23.320Z``: the history's and list's format."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def submit_time(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def transaction_time(moment: datetime) -> str:
    """``2016-08-11T22:47:57Z``: the Transaction Details API's documented format."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def invoice_links(invoice_number: str) -> dict[str, Any]:
    path = f"/v2/invoices/{invoice_number}"
    return {
        "self": {"href": path, "method": "GET"},
        "update": {"href": path, "method": "PUT"},
        "deliver": {"href": f"{path}/delivery", "method": "POST"},
        "cancel": {"href": f"{path}/cancelation", "method": "POST"},
    }


def invoice_details(
    invoice: SandboxInvoice, now: datetime, *, transaction_details_on_review: bool = False
) -> dict[str, Any]:
    """Get Invoice Details; also the answer to create, update and the actions.

    ``transaction_details_on_review``: PENDING and REJECTED entries carry the payment's
    transaction, as Cybersource may."""
    content = invoice.content
    return {
        "_links": invoice_links(invoice.invoice_number),
        "id": invoice.invoice_number,
        "submitTimeUtc": submit_time(now),
        "status": invoice.status.value,
        "customerInformation": _customer(content),
        "processingInformation": {
            "requestPhone": content.request_phone,
            "requestShipping": content.request_shipping,
        },
        "invoiceInformation": _present(
            invoiceNumber=invoice.invoice_number,
            description=content.description,
            dueDate=content.due_date.isoformat(),
            expirationDate=content.expiration_date and content.expiration_date.isoformat(),
            allowPartialPayments=content.allow_partial_payments,
            paymentLink=invoice.payment_link,
            deliveryMode=content.delivery_mode.value,
        ),
        "orderInformation": _present(
            amountDetails=_amount_details(invoice),
            lineItems=[_line_item(item) for item in content.line_items] or None,
        ),
        "invoiceHistory": [
            _history_entry(entry, transaction_details_on_review)
            for entry in reversed(invoice.history)  # newest first, as documented
        ],
    }


def invoice_summary(invoice: SandboxInvoice) -> dict[str, Any]:
    """One item of Get List of Invoices: no balance, no history."""
    content = invoice.content
    return {
        "_links": invoice_links(invoice.invoice_number),
        "id": invoice.invoice_number,
        "status": invoice.status.value,
        "createdDate": utc_time(invoice.created_at),
        "customerInformation": _present(
            name=content.customer_name, merchantCustomerId=content.merchant_customer_id
        ),
        "invoiceInformation": _present(
            dueDate=content.due_date.isoformat(),
            expirationDate=content.expiration_date and content.expiration_date.isoformat(),
            paymentLink=invoice.payment_link,
        ),
        "orderInformation": {
            "amountDetails": {"totalAmount": content.total_amount, "currency": content.currency}
        },
    }


def invoice_list(
    summaries: Sequence[Any],
    *,
    offset: int,
    limit: int,
    status: str | None,
    total: int,
    now: datetime,
) -> dict[str, Any]:
    """One page of Get List of Invoices, its items given as ``invoice_summary`` documents
    (or those already written as JSON)."""
    filter_query = f"&status={status}" if status else ""
    self_href = f"/v2/invoices/?offset={offset}&limit={limit}{filter_query}"
    links: dict[str, Any] = {"self": {"href": self_href, "method": "GET"}}
    if offset + limit < total:
        links["next"] = {
            "href": f"/v2/invoices/?offset={offset + limit}&limit={limit}{filter_query}",
            "method": "GET",
        }
    return {
        "_links": links,
        "submitTimeUtc": submit_time(now),
        "totalInvoices": total,
        "invoices": list(summaries),
    }


# What each decision looks like in the answer. The status and the application results of a
# settled payment follow the SDK's model of the answer (TssV2TransactionsGet200Response);
# the review ones use the decision-manager reason codes 480 (marked for review) and 481
# (rejected). Inferred: the invoicing guide does not show a transaction of its own.
_ANSWER_BY_DECISION = {
    TransactionDecision.ACCEPTED: ("TRANSMITTED", "100", "1", "SOK", ("ics_auth", "ics_bill")),
    TransactionDecision.IN_REVIEW: ("AUTHORIZED_PENDING_REVIEW", "480", "1", "DREVIEW",
                                    ("ics_auth",)),
    TransactionDecision.REJECTED: ("AUTHORIZED_RISK_DECLINED", "481", "0", "DREJECT",
                                   ("ics_auth",)),
}  # fmt: skip
_APPLICATION_RESULT = {"reasonCode": "100", "rCode": "1", "rFlag": "SOK"}


def transaction_details(transaction: SandboxTransaction, organization_id: str) -> dict[str, Any]:
    """Get Transaction Details (``GET /tss/v2/transactions/{id}``) for a payment on an
    invoice: amounts as strings, as the SDK types them."""
    status, reason_code, r_code, r_flag, applications = _ANSWER_BY_DECISION[transaction.decision]
    exponent = currency_exponent(transaction.currency)
    amount = format(transaction.amount.quantize(Decimal(1).scaleb(-exponent)), "f")
    return {
        "_links": {
            "self": {"href": f"/tss/v2/transactions/{transaction.transaction_id}",
                     "method": "GET"}
        },
        "id": transaction.transaction_id,
        "rootId": transaction.transaction_id,
        "reconciliationId": transaction.reconciliation_id,
        "merchantId": organization_id,
        "status": status,
        "submitTimeUTC": transaction_time(transaction.submitted_at),
        "applicationInformation": {
            "status": status,
            "reasonCode": reason_code,
            "rCode": r_code,
            "rFlag": r_flag,
            "applications": [{"name": name, **_APPLICATION_RESULT} for name in applications],
        },
        "orderInformation": {
            "amountDetails": {
                "totalAmount": amount,
                "authorizedAmount": amount,
                "currency": transaction.currency,
            }
        },
    }  # fmt: skip


def refusal(error: SandboxRefusal, now: datetime) -> dict[str, Any]:
    """The documented error body of a 400, 401, 404, 429 or 502."""
    return {
        "submitTimeUtc": submit_time(now),
        "status": error.status,
        "reason": error.reason,
        "message": error.message,
        "details": [
            {"field": problem.field, "reason": problem.reason} for problem in error.details
        ],
    }


def _customer(content: InvoiceContent) -> dict[str, Any]:
    return _present(
        name=content.customer_name,
        email=content.customer_email,
        merchantCustomerId=content.merchant_customer_id,
        company=content.company_name and {"name": content.company_name},
    )


def _amount_details(invoice: SandboxInvoice) -> dict[str, Any]:
    content = invoice.content
    return _present(
        totalAmount=content.total_amount,
        currency=content.currency,
        balanceAmount=invoice.balance_amount,
        discountAmount=content.discount_amount,
        discountPercent=content.discount_percent,
        subAmount=content.sub_amount,
        minimumPartialAmount=content.minimum_partial_amount,
        taxDetails=_present(type=content.tax_type, amount=content.tax_amount, rate=content.tax_rate)
        or None,
        freight=_present(
            amount=content.freight_amount,
            taxable=content.freight_taxable,
            taxRate=content.freight_tax_rate,
        )
        or None,
    )


def _line_item(item: LineItem) -> dict[str, Any]:
    return _present(
        productSku=item.product_sku,
        productName=item.product_name,
        quantity=item.quantity,
        unitPrice=item.unit_price,
        discountAmount=item.discount_amount,
        discountPercent=item.discount_percent,
        taxAmount=item.tax_amount,
        taxRate=item.tax_rate,
        totalAmount=item.total_amount,
    )


def _history_entry(entry: HistoryEntry, transaction_details_on_review: bool) -> dict[str, Any]:
    document: dict[str, Any] = {"event": entry.event.value, "date": utc_time(entry.date)}
    shows_payment = entry.event is HistoryEvent.PAYMENT or (
        transaction_details_on_review and entry.event in REVIEW_EVENTS
    )
    if entry.payment is None or not shows_payment:
        return document
    match entry.payment.shown:
        case TransactionDetailsShown.AMOUNT:
            document["transactionDetails"] = {
                "transactionId": entry.payment.transaction_id,
                "amount": entry.payment.amount,
            }
        case TransactionDetailsShown.TRANSACTION_ID:
            document["transactionDetails"] = {"transactionId": entry.payment.transaction_id}
        case TransactionDetailsShown.NONE:
            pass
    return document


def _present(**fields: Any) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not None}
