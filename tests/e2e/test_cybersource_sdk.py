"""Cybersource's own Python SDK drives the sandbox over a real socket: it signs as Cybersource
expects and reads the sandbox's answers into its models, for every invoicing operation."""

from __future__ import annotations

import base64
import json
import warnings
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from service.cybersource.http_signature import MerchantCredentials
from service.sandbox.app import create_sandbox_app
from tests.support.cybersource_sandbox import MERCHANT
from tests.support.server import serving

with warnings.catch_warnings():
    # The SDK imports pkg_resources and other deprecated modules.
    warnings.simplefilter("ignore")
    CyberSource = pytest.importorskip(
        "CyberSource", reason="cybersource-rest-client-python (the dev extra) is not installed"
    )

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]


PORTFOLIO = MerchantCredentials(
    merchant_id="portfolio",
    key_id="7d0c3e55-95b1-4c61-a2a4-3f1d2c9b8e70",
    secret_key=b"portfolio-shared-secret-76543210",
    organization_ids=("child-1", "child-2"),
)


def sdk_config(url: str, credentials: MerchantCredentials, **extra: Any) -> dict[str, Any]:
    return {
        "authentication_type": "http_signature",
        "merchantid": credentials.merchant_id,
        "merchant_keyid": credentials.key_id,
        "merchant_secretkey": base64.b64encode(credentials.secret_key).decode(),
        # The host it signs and sends as Host; IntermediateHost is where it connects, and is
        # the one place the SDK accepts a scheme, so plain HTTP needs no TLS.
        "run_environment": url.removeprefix("http://"),
        "IntermediateHost": url,
        **extra,
    }


@pytest.fixture
def invoices_api() -> Iterator[Any]:
    with serving(create_sandbox_app([MERCHANT])) as url:
        yield CyberSource.InvoicesApi(sdk_config(url, MERCHANT))


def request_body(model: Any) -> str:
    """A request as the SDK's own samples build it: the model's attributes, Nones dropped,
    as JSON (the SDK turns the snake-case names into the documented camelCase)."""
    return json.dumps(_without_none(model.__dict__))


def _without_none(document: dict[str, Any]) -> dict[str, Any]:
    return {
        name: _without_none(value) if isinstance(value, dict) else value
        for name, value in document.items()
        if value is not None
    }


def invoice_information(**fields: Any) -> dict[str, Any]:
    return dict(CyberSource.Invoicingv2invoicesInvoiceInformation(**fields).__dict__)


def amounts(total: str) -> dict[str, Any]:
    details = CyberSource.Invoicingv2invoicesOrderInformationAmountDetails(
        total_amount=total, currency="USD"
    )
    return dict(CyberSource.Invoicingv2invoicesOrderInformation(amount_details=details.__dict__)
                .__dict__)  # fmt: skip


def customer(name: str, email: str) -> dict[str, Any]:
    return dict(CyberSource.Invoicingv2invoicesCustomerInformation(name=name, email=email).__dict__)


def create(api: Any, number: str, total: str, *, send_immediately: bool) -> Any:
    body = CyberSource.CreateInvoiceRequest(
        customer_information=customer("Tanya Lee", "tanya.lee@example.com"),
        invoice_information=invoice_information(
            invoice_number=number,
            description="Consulting",
            due_date="2026-12-31",
            send_immediately=send_immediately,
            delivery_mode="email",
        ),
        order_information=amounts(total),
    )
    data, status, _ = api.create_invoice(request_body(body))
    assert status == 201
    return data


def test_the_sdk_creates_updates_publishes_sends_and_reads_an_invoice(invoices_api: Any) -> None:
    draft = create(invoices_api, "SDK-1", "247.86", send_immediately=False)
    assert (draft.status, draft.id) == ("DRAFT", "SDK-1")
    assert draft.order_information.amount_details.total_amount == "247.86"

    update = CyberSource.UpdateInvoiceRequest(
        customer_information=customer("Tanya Lee", "tanya@example.org"),
        invoice_information=dict(
            CyberSource.Invoicingv2invoicesidInvoiceInformation(
                description="Consulting, revised", due_date="2027-01-31", delivery_mode="email"
            ).__dict__
        ),
        order_information=amounts("300.00"),
    )
    updated, _, _ = invoices_api.update_invoice("SDK-1", request_body(update))
    # The SDK reads the documented JSON numbers as floats and keeps their str().
    assert Decimal(updated.order_information.amount_details.balance_amount) == Decimal(300)
    assert updated.invoice_information.payment_link != draft.invoice_information.payment_link

    published, _, _ = invoices_api.perform_publish_action("SDK-1")
    assert published.status == "CREATED"
    sent, _, _ = invoices_api.perform_send_action("SDK-1")
    assert sent.status == "SENT"

    details, _, _ = invoices_api.get_invoice("SDK-1")
    assert [entry.event for entry in details.invoice_history] == [
        "SEND", "CREATE", "UPDATE", "DRAFT"
    ]  # fmt: skip
    assert details.links.update.method == "PUT"


def test_the_sdk_sends_at_creation_cancels_and_lists_by_status(invoices_api: Any) -> None:
    sent = create(invoices_api, "SDK-2", "10.00", send_immediately=True)
    assert sent.status == "SENT"
    create(invoices_api, "SDK-3", "20.00", send_immediately=False)
    canceled, _, _ = invoices_api.perform_cancel_action("SDK-2")
    assert canceled.status == "CANCELED"

    listed, _, _ = invoices_api.get_all_invoices(0, 10, status="CANCELED")
    assert listed.total_invoices == 1
    assert [invoice.id for invoice in listed.invoices] == ["SDK-2"]
    every, _, _ = invoices_api.get_all_invoices(0, 10)
    assert [invoice.id for invoice in every.invoices] == ["SDK-3", "SDK-2"]


def test_the_sdk_reports_a_refusal_with_the_documented_reason(invoices_api: Any) -> None:
    create(invoices_api, "SDK-4", "10.00", send_immediately=True)
    invoices_api.perform_cancel_action("SDK-4")
    with pytest.raises(CyberSource.rest.ApiException) as refused:
        invoices_api.perform_send_action("SDK-4")
    assert refused.value.status == 400
    assert json.loads(refused.value.body)["reason"] == "ACTION_NOT_ALLOWED"


def test_a_portfolio_meta_key_acts_for_each_child_organization_apart() -> None:
    with serving(create_sandbox_app([PORTFOLIO])) as url:
        child_apis = [
            CyberSource.InvoicesApi(
                # A string: this SDK version logs its config through ast.literal_eval of
                # JSON, which cannot read a JSON true.
                sdk_config(url, PORTFOLIO, merchantid=child, use_metakey="true",
                           portfolio_id=PORTFOLIO.merchant_id)
            )
            for child in PORTFOLIO.organization_ids
        ]  # fmt: skip
        first, second = child_apis
        create(first, "1001", "10.00", send_immediately=True)
        create(second, "1001", "20.00", send_immediately=False)
        assert first.get_invoice("1001")[0].status == "SENT"
        assert second.get_invoice("1001")[0].status == "DRAFT"
        assert second.get_all_invoices(0, 10)[0].total_invoices == 1
