"""The time zone the console shows instants in: the ``tz`` query parameter (an IANA name,
UTC unless asked), carried by the pages' links and forms, and each instant shown to the
second in it, its exact stored value (ISO 8601, UTC) in the ``<time>`` element beside it."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import jinja2
from markupsafe import Markup
from starlette.requests import Request

from service.fronts.console.inputs import FILTER_LENGTH_MAX, InvalidInput
from service.read.instants import parse_zone

ZONE_PARAMETER = "tz"
DEFAULT_ZONE_NAME = "UTC"
SHOWN_FORMAT = "%Y-%m-%d %H:%M:%S"


def zone_filter(value: str | None) -> tzinfo:
    """The zone a page was asked to show instants in; InvalidInput names what is wrong."""
    if value is None or not value.strip():
        return UTC
    if len(value) > FILTER_LENGTH_MAX:
        raise InvalidInput(f"tz: at most {FILTER_LENGTH_MAX} characters")
    try:
        return parse_zone(value.strip())
    except ValueError as problem:
        raise InvalidInput(f"tz: {problem}") from None


def zone_name(zone: tzinfo) -> str:
    return str(getattr(zone, "key", DEFAULT_ZONE_NAME))


def requested_zone(request: Request) -> tzinfo:
    """The zone the page's endpoint read (UTC before it did, or when it was refused)."""
    zone: tzinfo = getattr(request.state, "zone", UTC)
    return zone


def zone_was_read(request: Request) -> bool:
    """Whether the page's endpoint read the zone (after its caller was authorized)."""
    return hasattr(request.state, "zone")


def with_zone(url: str, name: str) -> str:
    """``url`` carrying the zone, unless it is UTC or the url names one already."""
    if name == DEFAULT_ZONE_NAME:
        return url
    parts = urlsplit(url)
    if any(key == ZONE_PARAMETER for key, _ in parse_qsl(parts.query)):
        return url
    separator = "&" if parts.query else ("" if url.endswith("?") else "?")
    return url + separator + urlencode({ZONE_PARAMETER: name})


@jinja2.pass_context
def zoned(context: jinja2.runtime.Context, url: str) -> str:
    """A template filter: a console link that keeps the page's zone."""
    return with_zone(url, str(context.get("zone_name", DEFAULT_ZONE_NAME)))


def shown_instant(value: datetime | str | None, zone: tzinfo) -> Markup:
    """An instant to the second in ``zone`` with its abbreviation, inside a ``<time>`` whose
    ``datetime`` and ``title`` hold the exact stored value."""
    if value is None or value == "":
        return Markup("—")
    instant = value if isinstance(value, datetime) else _parsed(value)
    if instant is None:
        return Markup("{}").format(value)
    exact = value if isinstance(value, str) else _iso(instant)
    try:
        local = instant.astimezone(zone)
    except OverflowError:  # at the ends of the calendar: shown as stored
        local = instant
    shown = f"{local.strftime(SHOWN_FORMAT)} {local.tzname() or zone_name(zone)}"
    return Markup('<time datetime="{}" title="{}">{}</time>').format(exact, exact, shown)


@jinja2.pass_context
def when(context: jinja2.runtime.Context, value: Any) -> Markup:
    """A template filter: an instant in the page's zone (``shown_instant``)."""
    zone = context.get("zone", UTC)
    return shown_instant(value, zone)


def _parsed(text: str) -> datetime | None:
    try:
        instant = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")
