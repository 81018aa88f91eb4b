"""A stored event row read as a ``RecordedEvent``: its JSON text decoded exactly as
``json.loads`` decodes it, whatever the text holds."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from service.domain.events import EventSource
from service.store.events.recorded_rows import recorded_event

MOMENT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _row(data: Any, source: str = "webhook") -> dict[str, Any]:
    return {
        "position": 7,
        "stream_id": "INV-1",
        "version": 2,
        "type": "InvoiceSent",
        "schema_version": 2,
        "occurred_at": MOMENT,
        "recorded_at": MOMENT,
        "source": source,
        "idempotency_key": "key",
        "data": data,
    }


@pytest.mark.parametrize(
    "text",
    [
        '{"amount": "12.50", "customer": {"name": "Zoë \\u00e9 \\ud83d\\ude00"}}',
        '{"big": 123456789012345678901234567890, "negative": -9223372036854775809}',
        '{"float": 0.30000000000000004441, "tiny": 5e-324, "negativeZero": -0.0}',
        '{"beyondFloat": 1' + "0" * 400 + '.5, "nested": [1, [2, {"a": null}], true]}',
        '{"unpaired": "\\ud800"}',
    ],
)
def test_the_data_text_reads_as_json_loads_reads_it(text: str) -> None:
    event = recorded_event(_row(text))
    assert repr(event.data) == repr(json.loads(text))


def test_data_already_decoded_by_the_engine_is_kept() -> None:
    data = {"amount": "1.00"}
    assert recorded_event(_row(data)).data is data


@pytest.mark.parametrize("source", list(EventSource))
def test_the_source_reads_as_its_enum_member(source: EventSource) -> None:
    assert recorded_event(_row("{}", source.value)).source is source


def test_an_unknown_source_is_refused_as_the_enum_refuses_it() -> None:
    with pytest.raises(ValueError, match="not a valid EventSource"):
        recorded_event(_row("{}", "carrier pigeon"))
