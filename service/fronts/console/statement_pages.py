"""The console's customer statement: what one customer owes in one currency, its aging, and
what they paid in a period, as a printable page and as CSV."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import Response

from service.fronts.auth import Caller
from service.fronts.console.csv_files import csv_text
from service.fronts.console.frame import ConsoleFrame
from service.fronts.console.inputs import InvalidInput, day_filter, text_filter
from service.fronts.console.views import AGING_LABELS, SECURITY_HEADERS
from service.read.statements import Statement

# A statement's period, unless asked otherwise: the last 90 days.
PERIOD_DAYS_DEFAULT = 90
PERIOD_DAYS_MAX = 3660
CSV_COLUMNS = (
    "line", "organization", "invoice", "date", "status", "days_overdue", "aging_bucket",
    "total", "amount", "provisional",
)  # fmt: skip


class StatementPages(ConsoleFrame):
    async def statement(self, request: Request, caller: Caller) -> Response:
        asked, shown = await self._statement(request, caller)
        return self._render(
            request, "statement.html", title="Customer statement", asked=asked, statement=shown,
            aging_labels=AGING_LABELS,
        )  # fmt: skip

    async def statement_csv(self, request: Request, caller: Caller) -> Response:
        _, shown = await self._statement(request, caller)
        if shown is None:
            raise InvalidInput("customerEmail, customerName: name the customer")
        name = (shown.customer_email or shown.customer_name or "customer").replace('"', "")
        return Response(
            statement_csv(shown),
            media_type="text/csv; charset=utf-8",
            headers={
                **SECURITY_HEADERS,
                "Content-Disposition": f'attachment; filename="statement-{shown.as_of}.csv"',
                "X-Statement-Customer": "".join(c for c in name if c.isprintable())[:100],
            },
        )

    async def _statement(
        self, request: Request, caller: Caller
    ) -> tuple[dict[str, str], Statement | None]:
        query = request.query_params
        email = text_filter(query.get("customerEmail"), "customerEmail")
        name = text_filter(query.get("customerName"), "customerName")
        currency = (text_filter(query.get("currency"), "currency") or "").upper()
        today = datetime.now(UTC).date()
        as_of = day_filter(query.get("asOf"), "asOf") or today
        period_to = day_filter(query.get("to"), "to") or as_of
        period_from = day_filter(query.get("from"), "from") or (
            period_to - timedelta(days=PERIOD_DAYS_DEFAULT)
        )
        if period_from > period_to:
            raise InvalidInput("from: must not be after to")
        if (period_to - period_from).days > PERIOD_DAYS_MAX:
            raise InvalidInput(f"from, to: at most {PERIOD_DAYS_MAX} days apart")
        asked = {
            "customerEmail": email or "", "customerName": name or "", "currency": currency,
            "asOf": as_of.isoformat(), "from": period_from.isoformat(), "to": period_to.isoformat(),
        }  # fmt: skip
        if not email and not name:
            return asked, None
        if not (len(currency) == 3 and currency.isascii() and currency.isalpha()):
            raise InvalidInput("currency: a statement is in one currency: name its three letters")
        shown = await self._sources.statements.statement(
            customer_email=email, customer_name=name, currency=currency, as_of=as_of,
            period_from=period_from, period_to=period_to,
            organizations=self._organizations(request, caller),
        )  # fmt: skip
        return asked, shown


def statement_csv(statement: Statement) -> str:
    """One line per open invoice, per payment, and the two totals; amounts as exact decimal
    strings, unknown an empty cell, text guarded against spreadsheet formulas."""
    owed = None if statement.owed_incomplete else statement.owed
    paid = None if statement.paid_incomplete else statement.paid
    return csv_text(
        CSV_COLUMNS,
        [
            *(
                ("open_invoice", invoice.organization_id, invoice.invoice_number,
                 invoice.due_date, invoice.status, invoice.days_overdue, invoice.aging_bucket,
                 invoice.total, invoice.balance, None)
                for invoice in statement.open_invoices
            ),
            *(
                ("payment", payment.organization_id, payment.invoice_number,
                 payment.collected_at.date(), None, None, None, None, payment.amount,
                 payment.provisional)
                for payment in statement.payments
            ),
            ("owed", None, None, statement.as_of, *[None] * 4, owed, None),
            ("paid", None, None, statement.period_to, *[None] * 4, paid, None),
        ],
    )  # fmt: skip
