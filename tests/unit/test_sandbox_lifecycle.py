"""The sandbox's invoices follow the lifecycle rules Cybersource documents."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from service.domain.status import InvoiceStatus
from service.sandbox.errors import ActionNotAllowed, DuplicateRecord, TransactionNotFound
from service.sandbox.invoices import HistoryEvent, InvoiceContent, Payment, SandboxInvoice
from service.sandbox.organizations import OrganizationInvoices
from service.sandbox.transactions import TransactionDecision

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
CONTENT = InvoiceContent(
    due_date=date(2026, 6, 1),
    total_amount=Decimal("100.00"),
    currency="USD",
    customer_email="tanya@example.com",
    allow_partial_payments=True,
)


def content_for(email: str) -> InvoiceContent:
    """Eighty dollars due in July for ``email``, without partial payments."""
    return InvoiceContent(
        due_date=date(2026, 7, 1), total_amount=Decimal(80), currency="USD", customer_email=email
    )


def sent_invoice() -> SandboxInvoice:
    invoice = SandboxInvoice.draft("1", CONTENT, NOW)
    invoice.send(NOW)
    return invoice


def events(invoice: SandboxInvoice) -> list[str]:
    return [entry.event.value for entry in invoice.history]


def test_publishing_a_draft_creates_it_and_sending_twice_is_a_resend() -> None:
    invoice = SandboxInvoice.draft("1", CONTENT, NOW)
    invoice.publish(NOW)
    invoice.send(NOW)
    invoice.send(NOW)
    assert invoice.status is InvoiceStatus.SENT
    assert events(invoice) == ["DRAFT", "CREATE", "SEND", "RESEND"]


def test_history_dates_never_repeat_within_an_invoice() -> None:
    invoice = sent_invoice()
    invoice.pay(Payment(Decimal("10.00"), "tx-1"), NOW)
    dates = [entry.date for entry in invoice.history]
    assert dates == sorted(set(dates))
    assert dates[-1] - dates[0] == timedelta(milliseconds=2)


def test_only_a_draft_can_be_published() -> None:
    with pytest.raises(ActionNotAllowed):
        sent_invoice().publish(NOW)


def test_an_update_after_a_payment_is_refused() -> None:
    invoice = sent_invoice()
    invoice.pay(Payment(Decimal("10.00"), "tx-1"), NOW)
    with pytest.raises(ActionNotAllowed):
        invoice.update(CONTENT, NOW)


def test_an_update_replaces_the_content_and_a_new_email_gives_a_new_link() -> None:
    invoice = sent_invoice()
    link = invoice.payment_link
    invoice.update(content_for("tanya@example.com"), NOW)
    assert invoice.payment_link == link and invoice.balance_amount == 80
    assert invoice.content.allow_partial_payments is False  # left out: removed
    invoice.update(CONTENT, NOW)
    assert invoice.payment_link == link  # the same e-mail keeps the link
    invoice.update(content_for("new@example.com"), NOW)
    assert invoice.payment_link != link
    assert events(invoice)[-3:] == ["UPDATE", "UPDATE", "UPDATE"]


def test_nothing_changes_while_a_payment_is_in_review() -> None:
    invoice = sent_invoice()
    invoice.hold_payment_for_review(Payment(Decimal("100.00"), "tx-1"), NOW)
    assert invoice.status is InvoiceStatus.PENDING
    for action in (
        lambda: invoice.update(CONTENT, NOW),
        lambda: invoice.cancel(NOW),
        lambda: invoice.send(NOW),
        lambda: invoice.pay(Payment(Decimal("1.00"), "tx-2"), NOW),
        lambda: invoice.hold_payment_for_review(Payment(Decimal("1.00"), "tx-2"), NOW),
    ):
        with pytest.raises(ActionNotAllowed):
            action()


def test_a_rejected_review_returns_to_sent_even_after_a_partial_payment() -> None:
    invoice = sent_invoice()
    invoice.hold_payment_for_review(Payment(Decimal("100.00"), "tx-1"), NOW)
    invoice.reject_payment_under_review(NOW)
    assert invoice.status is InvoiceStatus.SENT
    invoice.pay(Payment(Decimal("40.00"), "tx-2"), NOW)
    invoice.hold_payment_for_review(Payment(Decimal("60.00"), "tx-3"), NOW)
    invoice.reject_payment_under_review(NOW)
    # "reject (then back to SENT)": the balance still shows the accepted payment.
    assert (invoice.status, invoice.balance_amount) == (InvoiceStatus.SENT, Decimal("60.00"))
    invoice.hold_payment_for_review(Payment(Decimal("60.00"), "tx-4"), NOW)
    invoice.accept_payment_under_review(NOW)
    assert (invoice.status, invoice.balance_amount) == (InvoiceStatus.PAID, 0)


def test_an_invoice_sent_back_after_a_rejection_keeps_what_was_paid() -> None:
    invoice = sent_invoice()
    invoice.pay(Payment(Decimal("40.00"), "tx-1"), NOW)
    invoice.hold_payment_for_review(Payment(Decimal("60.00"), "tx-2"), NOW)
    invoice.reject_payment_under_review(NOW)
    assert invoice.send(NOW).event is HistoryEvent.RESEND
    invoice.remind(NOW)
    for refused in (lambda: invoice.cancel(NOW), lambda: invoice.update(CONTENT, NOW)):
        with pytest.raises(ActionNotAllowed):
            refused()
    invoice.pay(Payment(Decimal("20.00"), "tx-3"), NOW)
    assert (invoice.status, invoice.balance_amount) == (InvoiceStatus.PARTIAL, Decimal("40.00"))


def test_cancel_is_only_for_an_invoice_without_payment() -> None:
    invoice = sent_invoice()
    invoice.pay(Payment(Decimal("10.00"), "tx-1"), NOW)
    with pytest.raises(ActionNotAllowed):
        invoice.cancel(NOW)
    unpaid = sent_invoice()
    unpaid.cancel(NOW)
    assert unpaid.status is InvoiceStatus.CANCELED
    with pytest.raises(ActionNotAllowed):
        unpaid.send(NOW)


def test_a_paid_invoice_cannot_be_sent_and_a_draft_cannot_be_paid() -> None:
    invoice = sent_invoice()
    invoice.pay(Payment(Decimal("100.00"), "tx-1"), NOW)
    with pytest.raises(ActionNotAllowed):
        invoice.send(NOW)
    with pytest.raises(ActionNotAllowed):
        SandboxInvoice.draft("2", CONTENT, NOW).pay(Payment(Decimal(1), "tx"), NOW)


def test_generated_numbers_skip_the_ones_merchants_chose() -> None:
    book = OrganizationInvoices("org")
    book.draft("2", CONTENT, NOW)
    numbers = [book.draft(None, CONTENT, NOW).invoice_number for _ in range(3)]
    assert numbers == ["1", "3", "4"]
    with pytest.raises(DuplicateRecord):
        book.draft("3", CONTENT, NOW)


def test_a_listing_by_status_follows_every_new_invoice_and_every_change() -> None:
    book = OrganizationInvoices("org")
    first = book.draft("1", CONTENT, NOW)
    first.send(NOW)
    assert [invoice.invoice_number for invoice in book.listed(InvoiceStatus.SENT)] == ["1"]
    second = book.draft("2", CONTENT, NOW)
    second.send(NOW)
    assert [invoice.invoice_number for invoice in book.listed(InvoiceStatus.SENT)] == ["2", "1"]
    first.pay(Payment(Decimal("100.00"), "tx-1"), NOW)
    assert [invoice.invoice_number for invoice in book.listed(InvoiceStatus.SENT)] == ["2"]
    assert [invoice.invoice_number for invoice in book.listed(InvoiceStatus.PAID)] == ["1"]
    assert [invoice.invoice_number for invoice in book.listed()] == ["2", "1"]


def test_each_payment_transaction_is_kept_with_when_it_was_submitted_and_its_decision() -> None:
    invoices = OrganizationInvoices("org-a")
    invoice = invoices.draft("1", CONTENT, NOW)
    invoice.send(NOW)
    invoice.pay(Payment(Decimal("30.00"), "tx-1"), NOW + timedelta(days=1))
    invoice.hold_payment_for_review(Payment(Decimal("30.00"), "tx-2"), NOW + timedelta(days=2))
    invoice.reject_payment_under_review(NOW + timedelta(days=3))
    invoice.hold_payment_for_review(Payment(Decimal("70.00"), "tx-3"), NOW + timedelta(days=4))
    assert invoices.transactions.get("tx-3").decision is TransactionDecision.IN_REVIEW
    invoice.accept_payment_under_review(NOW + timedelta(days=5))

    paid, rejected, reviewed = (invoices.transactions.get(f"tx-{n}") for n in (1, 2, 3))
    assert (paid.amount, paid.currency, paid.invoice_number) == (Decimal("30.00"), "USD", "1")
    assert (paid.decision, paid.submitted_at) == (
        TransactionDecision.ACCEPTED, NOW + timedelta(days=1)
    )  # fmt: skip
    assert rejected.decision is TransactionDecision.REJECTED
    # Accepted after review: the same transaction, submitted when the customer paid.
    assert (reviewed.decision, reviewed.submitted_at) == (
        TransactionDecision.ACCEPTED, NOW + timedelta(days=4)
    )  # fmt: skip
    assert len(invoices.transactions) == 3
    with pytest.raises(TransactionNotFound):
        invoices.transactions.get("tx-4")
