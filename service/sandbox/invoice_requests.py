"""Reading a documented create or update invoice request, with Cybersource's validation: every
problem is collected and answered at once as 400 VALIDATION_ERRORS, each naming its field as
MISSING_FIELD or INVALID_DATA."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from service.sandbox.errors import FieldProblem, ValidationErrors
from service.sandbox.invoices import DeliveryMode, InvoiceContent, LineItem

LINE_ITEMS_MAX = 30
TEXT_LENGTH_MAX = 2000
INVOICE_NUMBER_LENGTH_MAX = 100
# ISO 4217 minor units where they are not two.
CURRENCY_EXPONENTS = {
    **dict.fromkeys(
        ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND",
         "VUV", "XAF", "XOF", "XPF"),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}  # fmt: skip
CURRENCY_PATTERN = re.compile(r"[A-Z]{3}")
TAX_TYPES = frozenset({"alternate", "local", "national", "vat", "other", "green"})


def currency_exponent(currency: str) -> int:
    return CURRENCY_EXPONENTS.get(currency, 2)


@dataclass(frozen=True)
class InvoiceRequest:
    invoice_number: str | None
    send_immediately: bool
    content: InvoiceContent


def parse_json_object(body: bytes) -> Mapping[str, Any]:
    """The request body, numbers read as Decimals so amounts stay exact."""
    try:
        document = json.loads(body or b"{}", parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        raise ValidationErrors("the body is not JSON") from None
    if not isinstance(document, Mapping):
        raise ValidationErrors("the body must be a JSON object")
    return document


def read_invoice_request(document: Mapping[str, Any]) -> InvoiceRequest:
    fields = _Fields(document, "", [])
    customer = fields.child("customerInformation")
    invoice = fields.child("invoiceInformation")
    processing = fields.child("processingInformation")
    order = fields.child("orderInformation")
    amounts = order.child("amountDetails")
    freight = amounts.child("freight")
    tax = amounts.child("taxDetails")

    currency = amounts.text("currency", required=True)
    if currency is not None and not CURRENCY_PATTERN.fullmatch(currency):
        amounts.invalid("currency")
        currency = None
    exponent = currency_exponent(currency or "")
    delivery_mode = _delivery_mode(invoice)
    line_items = _line_items(order, exponent)
    email = customer.text("email")
    if delivery_mode is DeliveryMode.EMAIL and email is None:
        customer.missing("email")
    description = invoice.text("description")
    if description is None and not line_items and delivery_mode is DeliveryMode.EMAIL:
        invoice.missing("description")  # optional only on an itemized invoice
    tax_type = tax.text("type")
    if tax_type is not None and tax_type not in TAX_TYPES:
        tax.invalid("type")
    invoice_number = invoice.text("invoiceNumber")
    if invoice_number is not None and len(invoice_number) > INVOICE_NUMBER_LENGTH_MAX:
        invoice.invalid("invoiceNumber")
    total = amounts.amount("totalAmount", exponent, required=True, positive=True)
    due_date = invoice.day("dueDate", required=True)
    minimum_partial = amounts.amount("minimumPartialAmount", exponent, positive=True)
    if total is not None and minimum_partial is not None and minimum_partial > total:
        amounts.invalid("minimumPartialAmount")
    # Placeholders stand in for required fields that failed; such content is never returned.
    content = InvoiceContent(
        due_date=due_date or date.min,
        total_amount=total or Decimal(1),
        currency=currency or "",
        customer_name=customer.text("name"),
        customer_email=email,
        merchant_customer_id=customer.text("merchantCustomerId"),
        company_name=customer.child("company").text("name"),
        description=description,
        expiration_date=invoice.day("expirationDate"),
        delivery_mode=delivery_mode,
        allow_partial_payments=bool(invoice.boolean("allowPartialPayments")),
        request_phone=bool(processing.boolean("requestPhone")),
        request_shipping=bool(processing.boolean("requestShipping")),
        minimum_partial_amount=minimum_partial,
        sub_amount=amounts.amount("subAmount", exponent),
        discount_amount=amounts.amount("discountAmount", exponent),
        discount_percent=amounts.rate("discountPercent"),
        freight_amount=freight.amount("amount", exponent),
        freight_taxable=freight.boolean("taxable"),
        freight_tax_rate=freight.rate("taxRate"),
        tax_type=tax_type,
        tax_amount=tax.amount("amount", exponent),
        tax_rate=tax.rate("rate"),
        line_items=line_items,
    )
    send_immediately = bool(invoice.boolean("sendImmediately"))
    if fields.problems:
        raise ValidationErrors("Request has validation errors", tuple(fields.problems))
    return InvoiceRequest(invoice_number, send_immediately, content)


def _delivery_mode(invoice: _Fields) -> DeliveryMode:
    mode = invoice.text("deliveryMode")
    if mode is None:
        return DeliveryMode.EMAIL
    for known in DeliveryMode:
        if mode.lower() == known.value.lower():
            return known
    invoice.invalid("deliveryMode")
    return DeliveryMode.EMAIL


def _line_items(order: _Fields, exponent: int) -> tuple[LineItem, ...]:
    raw_items = order.value("lineItems")
    if raw_items is None:
        return ()
    if not isinstance(raw_items, list) or len(raw_items) > LINE_ITEMS_MAX:
        order.invalid("lineItems")
        return ()
    items = []
    for index in range(len(raw_items)):
        item = order.child(f"lineItems[{index}]", raw_items[index])
        quantity = item.rate("quantity")
        if quantity is not None and (quantity != quantity.to_integral_value() or quantity < 1):
            item.invalid("quantity")
        items.append(
            LineItem(
                product_sku=item.text("productSku", required=True),
                product_name=item.text("productName"),
                quantity=None if quantity is None else int(quantity),
                unit_price=item.amount("unitPrice", exponent),
                discount_amount=item.amount("discountAmount", exponent),
                discount_percent=item.rate("discountPercent"),
                tax_amount=item.amount("taxAmount", exponent),
                tax_rate=item.rate("taxRate"),
                total_amount=item.amount("totalAmount", exponent),
            )
        )
    return tuple(items)


class _Fields:
    """One object of the request, read field by field; problems go to a shared list."""

    def __init__(self, document: Any, prefix: str, problems: list[FieldProblem]) -> None:
        self._document: Mapping[str, Any] = document if isinstance(document, Mapping) else {}
        self._prefix = prefix
        self.problems = problems

    def child(self, name: str, value: Any = None) -> _Fields:
        if value is None:
            value = self._document.get(name)
        if value is not None and not isinstance(value, Mapping):
            self.invalid(name)
        return _Fields(value, self._path(name), self.problems)

    def value(self, name: str) -> Any:
        return self._document.get(name)

    def missing(self, name: str) -> None:
        self.problems.append(FieldProblem(self._path(name), "MISSING_FIELD"))

    def invalid(self, name: str) -> None:
        self.problems.append(FieldProblem(self._path(name), "INVALID_DATA"))

    def text(self, name: str, *, required: bool = False) -> str | None:
        value = self._document.get(name)
        if value is None or value == "":
            if required:
                self.missing(name)
            return None
        if isinstance(value, bool) or not isinstance(value, str | int):
            self.invalid(name)
            return None
        text = str(value)
        if len(text) > TEXT_LENGTH_MAX:
            self.invalid(name)
        return text

    def boolean(self, name: str) -> bool | None:
        value = self._document.get(name)
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        self.invalid(name)
        return None

    def day(self, name: str, *, required: bool = False) -> date | None:
        text = self.text(name, required=required)
        if text is None:
            return None
        try:
            if len(text) == len("YYYY-MM-DD"):
                return date.fromisoformat(text)
        except ValueError:
            pass
        self.invalid(name)
        return None

    def rate(self, name: str) -> Decimal | None:
        """A non-negative number with any number of decimals (rates, percents, quantities)."""
        number = self._decimal(name)
        if number is not None and number < 0:
            self.invalid(name)
            return None
        return number

    def amount(
        self, name: str, exponent: int, *, required: bool = False, positive: bool = False
    ) -> Decimal | None:
        """An amount in the currency: no more decimals than its exponent, never negative (and
        above zero where ``positive``)."""
        number = self._decimal(name)
        if number is None:
            if required and self._document.get(name) in (None, ""):
                self.missing(name)
            return None
        # Zeros past the currency's exponent say nothing; other digits there are refused.
        too_precise = number != number.quantize(Decimal(1).scaleb(-exponent))
        if number < 0 or (positive and number == 0) or too_precise:
            self.invalid(name)
            return None
        return number

    def _decimal(self, name: str) -> Decimal | None:
        value = self._document.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
            self.invalid(name)
            return None
        try:
            number = Decimal(value.strip() if isinstance(value, str) else value)
        except InvalidOperation:
            self.invalid(name)
            return None
        if not number.is_finite():
            self.invalid(name)
            return None
        return number

    def _path(self, name: str) -> str:
        separator = "" if not self._prefix or name.startswith("[") else "."
        return f"{self._prefix}{separator}{name}"
