"""A list page written from remembered summaries reads exactly as one written afresh."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from service.sandbox import json_numbers
from service.sandbox.documents import invoice_summary
from service.sandbox.invoices import InvoiceContent, Payment, SandboxInvoice
from service.sandbox.written_summaries import WrittenSummaries

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
CONTENT = InvoiceContent(
    due_date=date(2026, 6, 1),
    total_amount=Decimal("100.00"),
    currency="USD",
    customer_name="Tanya",
    customer_email="tanya@example.com",
    allow_partial_payments=True,
)


def written_afresh(invoice: SandboxInvoice) -> str:
    return json_numbers.dumps(invoice_summary(invoice))


def test_a_summary_is_written_again_after_every_change_it_shows() -> None:
    summaries = WrittenSummaries()
    invoice = SandboxInvoice.draft("1", CONTENT, NOW)
    steps = [
        lambda: invoice.publish(NOW),
        lambda: invoice.send(NOW),
        lambda: invoice.update(
            replace(CONTENT, total_amount=Decimal("120.50"), customer_email="t@example.org"),
            NOW + timedelta(seconds=1),
        ),
        lambda: invoice.pay(Payment(Decimal("20.50"), "tx-1"), NOW),
        lambda: invoice.hold_payment_for_review(Payment(Decimal("100.00"), "tx-2"), NOW),
        lambda: invoice.accept_payment_under_review(NOW),
    ]
    seen = {summaries.of("org", invoice).text}
    for step in steps:
        step()
        written = summaries.of("org", invoice).text
        assert written == written_afresh(invoice)
        seen.add(written)
    assert len(seen) == len(steps) + 1


def test_a_content_replaced_by_an_equal_one_keeps_its_summary_and_a_new_name_does_not() -> None:
    summaries = WrittenSummaries()
    invoice = SandboxInvoice.draft("1", CONTENT, NOW)
    first = summaries.of("org", invoice)
    invoice.content = replace(CONTENT)
    assert summaries.of("org", invoice) is first
    invoice.content = replace(CONTENT, customer_name="Tanya Ivanova")
    assert summaries.of("org", invoice).text == written_afresh(invoice)
    assert "Tanya Ivanova" in summaries.of("org", invoice).text


def test_invoices_with_one_number_in_two_organizations_keep_their_own_summaries() -> None:
    summaries = WrittenSummaries()
    ours = SandboxInvoice.draft("1", CONTENT, NOW)
    theirs = SandboxInvoice.draft("1", replace(CONTENT, currency="EUR"), NOW)
    assert summaries.of("ours", ours).text == written_afresh(ours)
    assert summaries.of("theirs", theirs).text == written_afresh(theirs)
    assert summaries.of("ours", ours).text != summaries.of("theirs", theirs).text


def test_written_json_is_inserted_as_it_is() -> None:
    page = {"invoices": [json_numbers.WrittenJSON('{"id":"1","total":1.50}')], "n": 1}
    assert json_numbers.dumps(page) == '{"invoices":[{"id":"1","total":1.50}],"n":1}'
