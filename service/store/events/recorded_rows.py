"""The one row mapper: a stored event row as a ``RecordedEvent``. It runs once per event of
every read, a rebuild's included, so it does no work a second time."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from service.domain.events import EventSource, RecordedEvent

# The sources by their stored value: a dictionary look-up, where calling the enum costs as
# much as the rest of the row.
_SOURCE_BY_VALUE = {source.value: source for source in EventSource}


def recorded_event(values: Any) -> RecordedEvent:
    """A stored event row as a ``RecordedEvent``.

    ``values`` indexes by column name: a SQLAlchemy row mapping or a driver record. A data
    column read as text (PostgreSQL's driver, queried with ``data::text``) is decoded here.
    """
    data = values["data"]
    source = values["source"]
    return RecordedEvent(
        values["position"],
        values["stream_id"],
        values["version"],
        values["type"],
        values["schema_version"],
        values["occurred_at"],
        values["recorded_at"],
        _SOURCE_BY_VALUE.get(source) or EventSource(source),
        values["idempotency_key"],
        _json_document(data) if isinstance(data, str) else data,
    )


def _json_document(text: str) -> Any:
    """JSON text as ``json.loads`` reads it. msgspec reads it the same way, several times
    faster, except for what it refuses: a number beyond a float's range (json reads it as
    infinity) and an unpaired surrogate escape. Those are read by json, as before."""
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return json.loads(text)
