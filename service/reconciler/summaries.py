"""Get List of Invoices' summaries, and whether one gives the ledger a reason to fetch details.

A summary carries the status, total, currency, due date and customer name, but no balance and
no history. An incremental sweep fetches Get Invoice Details only when the summary cannot
vouch for the ledger: the ledger does not know the invoice, disagrees with the summary, lacks
an amount, or holds an invoice whose balance can move without its status changing (a further
partial payment, a payment under review). Every field is optional and validated: a summary
that cannot be read is a reason to fetch, never to skip.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.reconciler.facts import Amount

# Partial payments and payments under review change the balance but not the status, and the
# summary carries no balance: only the details can say whether such an invoice moved.
BALANCE_MOVES_WITHOUT_STATUS_CHANGE = frozenset({"PARTIAL", "PENDING"})
# Statuses in which nothing has been collected: the balance is the whole total.
NOTHING_COLLECTED = frozenset({"DRAFT", "CREATED", "SENT"})
INVOICE_NUMBER_CHARACTERS_MAX = 200


class FetchReason(StrEnum):
    """Why a sweep fetched an invoice's details; counted per sweep."""

    FULL_SWEEP = "full_sweep"
    UNKNOWN_TO_LEDGER = "unknown_to_ledger"
    DISAGREES = "disagrees"
    BALANCE_CAN_MOVE = "balance_can_move"
    LEDGER_INCOMPLETE = "ledger_incomplete"
    UNREADABLE_SUMMARY = "unreadable_summary"


@dataclass(frozen=True, slots=True)
class LedgerInvoice:
    """What the ledger's read model holds of an invoice, as far as a summary can check it."""

    status: str | None
    currency: str | None
    total_amount: Decimal | None
    balance_amount: Decimal | None
    due_date: date | None
    customer_name: str | None
    # The ledger erased the payer on purpose: a name Cybersource still holds is no news.
    customer_erased: bool = False


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Customer(_Model):
    name: str | None = Field(None, max_length=200)


class _Information(_Model):
    due_date: date | None = Field(None, alias="dueDate")


class _Amounts(_Model):
    total: Amount = Field(None, alias="totalAmount")
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")


class _Order(_Model):
    amount_details: _Amounts = Field(default_factory=_Amounts, alias="amountDetails")


class InvoiceSummary(_Model):
    status: str = Field(max_length=20)
    customer: _Customer = Field(default_factory=_Customer, alias="customerInformation")
    information: _Information = Field(default_factory=_Information, alias="invoiceInformation")
    order: _Order = Field(default_factory=_Order, alias="orderInformation")


@dataclass(frozen=True, slots=True)
class ListedInvoice:
    """One item of a page: its number, and its summary when the summary could be read."""

    invoice_number: str
    summary: InvoiceSummary | None


class UnnamedInvoice(ValueError):
    """A list item without a usable ``id``: there is nothing to fetch it by."""


def read_listed_invoice(item: Any) -> ListedInvoice:
    """The number and, if readable, the summary; raises UnnamedInvoice without a number."""
    if not isinstance(item, dict):
        raise UnnamedInvoice("a list item is not an object")
    number = item.get("id")
    if isinstance(number, int) and not isinstance(number, bool):
        number = str(number)
    if not isinstance(number, str) or not 0 < len(number) <= INVOICE_NUMBER_CHARACTERS_MAX:
        raise UnnamedInvoice("a list item has no usable id")
    try:
        return ListedInvoice(number, InvoiceSummary.model_validate(item))
    except ValidationError:
        return ListedInvoice(number, None)


def fetch_reason(
    summary: InvoiceSummary | None, ledger: LedgerInvoice | None
) -> FetchReason | None:
    """Why the details must be fetched, or None when the summary vouches for the ledger."""
    if summary is None:
        return FetchReason.UNREADABLE_SUMMARY
    if ledger is None:
        return FetchReason.UNKNOWN_TO_LEDGER
    amounts = summary.order.amount_details
    # A field the summary lacks must be one the ledger lacks too; a ledger without a total or
    # a balance is then fetched below.
    if (ledger.status, ledger.total_amount, ledger.currency, ledger.due_date) != (
        summary.status,
        amounts.total,
        amounts.currency,
        summary.information.due_date,
    ):
        return FetchReason.DISAGREES
    name = summary.customer.name
    if name is not None and name != ledger.customer_name and not ledger.customer_erased:
        return FetchReason.DISAGREES
    if summary.status in BALANCE_MOVES_WITHOUT_STATUS_CHANGE:
        return FetchReason.BALANCE_CAN_MOVE
    if not _balance_adds_up(summary.status, ledger):
        return FetchReason.LEDGER_INCOMPLETE
    return None


def _balance_adds_up(status: str, ledger: LedgerInvoice) -> bool:
    """Whether the ledger's balance is what the status implies (the summary has none)."""
    balance, total = ledger.balance_amount, ledger.total_amount
    if balance is None or total is None:
        return False
    if status == "PAID":
        return balance == 0
    if status in NOTHING_COLLECTED:
        return balance == total
    return 0 <= balance <= total
