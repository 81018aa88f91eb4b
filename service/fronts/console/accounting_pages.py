"""The console's accounting exports: the exports made, newest first, each downloadable again
in any format; and, for operators, a form that records a new one for a period (as
``POST /v1/exports`` does: a payments export marks what it holds as posted)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import get_args
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from service.fronts.auth import Caller
from service.fronts.console.frame import ConsoleFrame
from service.fronts.console.inputs import InvalidInput, day_filter, small_form, text_filter
from service.fronts.console.views import SECURITY_HEADERS, as_document, see_other
from service.fronts.console.zones import requested_zone, with_zone, zone_name
from service.fronts.errors import ApiError
from service.read.accounting import ExportKind, PeriodRefused, UnknownExport
from service.read.accounting_files import FileFormat, FormatRefused, filename, media_type, render
from service.read.cursors import DELIVERY_ID_MAX
from service.store.accounting_exports import ExportTooLarge

EXPORTS_PAGE_SIZE = 50
EXPORT_ID_MAX = DELIVERY_ID_MAX  # a BIGINT's largest value, as every id here
KINDS: tuple[ExportKind, ...] = get_args(ExportKind)
FORMATS: tuple[FileFormat, ...] = get_args(FileFormat)


def _export_id(text: str | None, name: str) -> int | None:
    if not text:
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= 19):
        raise InvalidInput(f"{name}: must be an export's number")
    number = int(text)
    if not 0 < number <= EXPORT_ID_MAX:
        raise InvalidInput(f"{name}: must be an export's number")
    return number


class AccountingPages(ConsoleFrame):
    async def accounting_exports(self, request: Request, caller: Caller) -> Response:
        query = request.query_params
        before_id = _export_id(query.get("before"), "before")
        created = _export_id(query.get("created"), "created")
        exports = self._sources.accounting_exports
        items = await exports.exports(EXPORTS_PAGE_SIZE, before_id)
        older = None
        if len(items) == EXPORTS_PAGE_SIZE:
            older = "?" + urlencode({"before": items[-1].id})
        today = datetime.now(UTC).date()
        return self._render(
            request,
            "exports.html",
            title="Accounting exports",
            exports=[as_document(item) for item in items],
            created=created,
            older=older,
            operator=caller.is_operator,
            kinds=KINDS,
            formats=FORMATS,
            today=today.isoformat(),
            month_start=today.replace(day=1).isoformat(),
        )

    async def create_accounting_export(self, request: Request, caller: Caller) -> Response:
        form = await small_form(request)
        kind = str(form.get("kind", ""))
        if kind not in KINDS:
            raise InvalidInput("kind: must be one of " + ", ".join(KINDS))
        period_from = day_filter(str(form.get("from", "")), "from")
        period_to = day_filter(str(form.get("to", "")), "to")
        if period_from is None or period_to is None:
            raise InvalidInput("from, to: name the period's first and last days")
        try:
            created = await self._sources.accounting_exports.create(
                kind,
                period_from,
                period_to,
                caller.name,
                datetime.now(UTC),
            )
        except PeriodRefused as refused:
            raise InvalidInput(f"to: {refused}") from None
        except ExportTooLarge:
            raise InvalidInput(
                "from, to: the export is too large: choose a shorter period"
            ) from None
        target = "/console/exports?" + urlencode({"created": created.id})
        return see_other(with_zone(target, zone_name(requested_zone(request))))

    async def download_accounting_export(self, request: Request, caller: Caller) -> Response:
        export_id = request.path_params["exportId"]
        if not 0 < export_id <= EXPORT_ID_MAX:
            raise InvalidInput("exportId: must be an export's number")
        query = request.query_params
        file_format = query.get("format") or "csv"
        if file_format not in FORMATS:
            raise InvalidInput("format: must be one of " + ", ".join(FORMATS))
        currency = text_filter(query.get("currency"), "currency")
        if currency is not None:
            currency = currency.upper()
            if not (len(currency) == 3 and currency.isascii() and currency.isalpha()):
                raise InvalidInput("currency: must be a three-letter code")
        try:
            export, lines = await self._sources.accounting_exports.export(export_id)
            content = render(export, lines, file_format, currency)
        except UnknownExport:
            raise ApiError(404, "unknown_export", "no export with this id") from None
        except FormatRefused as refused:
            raise InvalidInput(f"{refused.parameter}: {refused.detail}") from None
        name = filename(export, file_format, currency)
        kind = media_type(file_format)
        return Response(
            content,
            media_type=f"{kind}; charset=utf-8",
            headers={**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'},
        )
