"""CSV answers: which media type a request gets, and the items of a document as CSV rows,
streamed batch by batch so that no export is ever held whole in memory.

The columns are the item model's fields in order; a nested object becomes dotted columns
(``customer.name``), a list of objects is left out (an invoice's payments are in its own
document), a list of names (an invoice's provisional amounts) is one field, the names
separated by spaces, and an object of free form (an event's data) is its JSON text. A null is
an empty field, a boolean ``true``/``false``, and amounts are the same decimal strings as in
JSON.

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return as a formula: a payer named ``=HYPERLINK(...)`` would run in finance's spreadsheet.
Such a text field is prefixed with ``'`` (OWASP's rule, service.read.spreadsheet_cells),
unless it is a plain number; JSON answers keep every value exactly.
"""

from __future__ import annotations

import csv
import io
import json
import types
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import StreamingResponse

from service.fronts.api.contract import CSV_MEDIA_TYPE, JSON_MEDIA_TYPE
from service.fronts.errors import ApiError
from service.read.spreadsheet_cells import not_a_formula

ACCEPT_ITEMS_MAX = 32  # an Accept header is a short list; more is not worth parsing
CSV_CONTENT_TYPE = f"{CSV_MEDIA_TYPE}; charset=utf-8; header=present"


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    path: tuple[str, ...]
    as_json_text: bool = False
    as_names: bool = False


def answers_csv(request: Request, format_parameter: str | None, *, csv_offered: bool) -> bool:
    """Whether to answer CSV: the format parameter decides when given, else Accept (the
    highest quality wins, JSON on a tie); 406 when Accept names nothing offered."""
    if format_parameter is not None:
        return format_parameter == "csv"
    offered = [JSON_MEDIA_TYPE, *([CSV_MEDIA_TYPE] if csv_offered else [])]
    accept = request.headers.get("accept", "").strip()
    if not accept:
        return False
    best: tuple[float, int] | None = None
    chosen = None
    for preference, media_type in enumerate(offered):
        quality = _quality(accept, media_type)
        # Higher quality first, then the order offered (JSON first).
        if quality > 0 and (best is None or (quality, -preference) > best):
            best, chosen = (quality, -preference), media_type
    if chosen is None:
        raise ApiError(
            406, "not_acceptable",
            f"Accept names none of the media types this answers with: {', '.join(offered)}",
        )  # fmt: skip
    return chosen == CSV_MEDIA_TYPE


def _quality(accept: str, media_type: str) -> float:
    """The quality Accept gives ``media_type``: the most specific range that matches it."""
    kind = media_type.split("/")[0]
    found: tuple[int, float] | None = None
    for item in accept.split(",")[:ACCEPT_ITEMS_MAX]:
        range_, *parameters = (part.strip() for part in item.split(";"))
        range_ = range_.lower()
        specificity = {media_type: 2, f"{kind}/*": 1, "*/*": 0}.get(range_)
        if specificity is None:
            continue
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    quality = 0.0
        if found is None or specificity > found[0]:
            found = (specificity, quality)
    return 0.0 if found is None else found[1]


def columns_of(model: type[BaseModel], leave_out: Collection[str] = ()) -> list[Column]:
    columns = []
    for name, field in model.model_fields.items():
        if name in leave_out:
            continue
        nested = _model_in(field.annotation)
        if nested is not None:
            columns += [Column(f"{name}.{inner}", (name, inner)) for inner in nested.model_fields]
        elif _is_list(field.annotation):
            if _listed_model(field.annotation) is None:
                columns.append(Column(name, (name,), as_names=True))
        else:
            columns.append(Column(name, (name,), as_json_text=_is_mapping(field.annotation)))
    return columns


def _branches(annotation: Any) -> tuple[Any, ...]:
    if get_origin(annotation) in (Union, types.UnionType):
        return get_args(annotation)
    return (annotation,)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    for branch in _branches(annotation):
        if isinstance(branch, type) and issubclass(branch, BaseModel):
            return branch
    return None


def _is_list(annotation: Any) -> bool:
    return any(get_origin(branch) is list for branch in _branches(annotation))


def _listed_model(annotation: Any) -> type[BaseModel] | None:
    for branch in _branches(annotation):
        if get_origin(branch) is list:
            return _model_in(get_args(branch)[0])
    return None


def _is_mapping(annotation: Any) -> bool:
    return any(get_origin(branch) is dict for branch in _branches(annotation))


def _cell(item: Mapping[str, Any], column: Column) -> str:
    value: Any = item
    for key in column.path:
        # dict, not Mapping: an ABC check per cell is a third of an export's time here.
        value = value.get(key) if isinstance(value, dict) else None
    if value is None:
        return ""
    if column.as_json_text:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if column.as_names:
        return " ".join(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return not_a_formula(str(value))


async def csv_lines(
    columns: Sequence[Column], batches: AsyncIterator[Sequence[Mapping[str, Any]]]
) -> AsyncIterator[str]:
    """The header row, then one chunk of rows per batch (RFC 4180: CRLF, quoted as needed)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([column.name for column in columns])
    yield buffer.getvalue()
    async for batch in batches:
        buffer.seek(0)
        buffer.truncate()
        writer.writerows([_cell(item, column) for column in columns] for item in batch)
        yield buffer.getvalue()


def csv_response(
    filename: str,
    model: type[BaseModel],
    batches: AsyncIterator[Sequence[Mapping[str, Any]]],
    headers: Mapping[str, str],
    leave_out: Collection[str] = (),
) -> StreamingResponse:
    """``leave_out``: optional columns the answer does not fill (as JSON leaves them out)."""
    return StreamingResponse(
        csv_lines(columns_of(model, leave_out), batches),
        media_type=CSV_CONTENT_TYPE,
        headers={**headers, "Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def one_batch(
    items: Sequence[Mapping[str, Any]],
) -> AsyncIterator[Sequence[Mapping[str, Any]]]:
    """A report's rows (a handful per currency, already read) as the one batch to stream."""
    yield items
