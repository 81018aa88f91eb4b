"""What a console page accepts from a query string or a form, each refused with the
name of what was wrong (``InvalidInput``)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from starlette.datastructures import FormData
from starlette.requests import Request

from service.read.instants import parse_day, parse_instant

FILTER_LENGTH_MAX = 200
# The console's forms hold a token and a few short fields, or (the queue's bulk replay) a
# page of delivery ids; nothing larger is read.
FORM_BYTES_MAX = 8 * 1024
FORM_FIELDS_MAX = 60


class InvalidInput(Exception):
    """A filter the page cannot use; shown beside the form, answered with 400."""


class FormTooLarge(Exception):
    """A form without a length, or longer than any the console sends."""


async def small_form(request: Request) -> FormData:
    declared = request.headers.get("content-length", "")
    if not declared.isdigit() or int(declared) > FORM_BYTES_MAX:
        raise FormTooLarge
    return await request.form(max_files=0, max_fields=FORM_FIELDS_MAX)


def text_filter(value: str | None, name: str) -> str | None:
    if value is None or not value.strip():
        return None
    if len(value) > FILTER_LENGTH_MAX:
        raise InvalidInput(f"{name}: at most {FILTER_LENGTH_MAX} characters")
    return value.strip()


def day_filter(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return parse_day(value)
    except ValueError as problem:
        raise InvalidInput(f"{name}: {problem}") from None


def instant_or_day(value: str | None, name: str, *, end: bool) -> datetime | None:
    """An instant, or a day: its start, or (``end``) the start of the next, as an exclusive end."""
    if not value:
        return None
    if "T" in value or "t" in value:
        try:
            return parse_instant(value)
        except ValueError as problem:
            raise InvalidInput(f"{name}: {problem}") from None
    day = day_filter(value, name)
    assert day is not None
    start = datetime.combine(day, time(), UTC)
    return start + timedelta(days=1) if end and day < date.max else start


def local_target(target: str | None) -> str:
    """Where to go after signing in: a console path of this site only, never another site."""
    if target and target.startswith("/console") and "//" not in target and "\\" not in target:
        return target
    return "/console"
