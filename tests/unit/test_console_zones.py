"""How the console shows an instant in a zone, and keeps the zone in its links."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from service.fronts.console.inputs import InvalidInput
from service.fronts.console.zones import shown_instant, with_zone, zone_filter


def test_an_instant_is_shown_to_the_second_in_the_zone_with_its_exact_value_beside_it() -> None:
    shown = shown_instant("2026-03-29T01:30:05.250000Z", ZoneInfo("Europe/Paris"))
    assert shown == (
        '<time datetime="2026-03-29T01:30:05.250000Z" title="2026-03-29T01:30:05.250000Z">'
        "2026-03-29 03:30:05 CEST</time>"
    )
    assert "00:30:05 UTC" in shown_instant(datetime(2026, 3, 29, 0, 30, 5, tzinfo=UTC), UTC)
    assert shown_instant(None, UTC) == "—"
    assert shown_instant("<b>not an instant</b>", UTC) == "&lt;b&gt;not an instant&lt;/b&gt;"


def test_links_keep_a_zone_other_than_utc_once() -> None:
    assert with_zone("/console/invoices", "UTC") == "/console/invoices"
    assert with_zone("/console/invoices", "Asia/Tokyo") == "/console/invoices?tz=Asia%2FTokyo"
    assert with_zone("/console?a=1", "Asia/Tokyo") == "/console?a=1&tz=Asia%2FTokyo"
    assert with_zone("/console?tz=UTC", "Asia/Tokyo") == "/console?tz=UTC"


@pytest.mark.parametrize("name", ["Europe/Nowhere", "/etc/localtime", "posix/../UTC"])
def test_a_zone_is_an_iana_name_or_refused_naming_tz(name: str) -> None:
    with pytest.raises(InvalidInput, match=r"^tz: "):
        zone_filter(name)
    assert zone_filter(None) is UTC and zone_filter(" ") is UTC
    assert zone_filter("America/Chicago") == ZoneInfo("America/Chicago")
