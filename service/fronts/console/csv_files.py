"""The console's CSV files: what a list or report page shows, one line per row, for a
spreadsheet. Unknown is an empty cell (never 0), amounts are exact decimal strings, instants
ISO 8601 in UTC, and text is guarded against spreadsheet formulas
(``service.read.spreadsheet_cells``).

The console serves them itself rather than linking to /v1's CSV answers: /v1 never reads the
console's session, so a person signed in to the console could not open those links."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.responses import Response

from service.fronts.console.views import SECURITY_HEADERS
from service.read.spreadsheet_cells import not_a_formula

CSV_MEDIA_TYPE = "text/csv; charset=utf-8; header=present"


def cells(values: Iterable[Any]) -> list[str]:
    row = []
    for value in values:
        if value is None:
            row.append("")
        elif isinstance(value, bool):
            row.append("true" if value else "false")
        elif isinstance(value, datetime):
            row.append(value.astimezone(UTC).isoformat().replace("+00:00", "Z"))
        elif isinstance(value, date):
            row.append(value.isoformat())
        else:
            row.append(not_a_formula(str(value)))
    return row


def csv_text(header: Sequence[str], rows: Iterable[Iterable[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(cells(row))
    return out.getvalue()


def csv_file(filename: str, header: Sequence[str], rows: Iterable[Iterable[Any]]) -> Response:
    return Response(
        csv_text(header, rows),
        media_type=CSV_MEDIA_TYPE,
        headers={**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{filename}"'},
    )


def same_filters(query: Mapping[str, str], *, leave_out: Sequence[str] = ("cursor",)) -> str:
    """The query string of a page's CSV file: the page's filters, not its position."""
    kept = {name: value for name, value in query.items() if name not in leave_out and value}
    return "?" + urlencode(kept) if kept else ""
