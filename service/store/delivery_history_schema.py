"""The tables of what became of a delivery after it arrived, made on the schema's metadata by
``service.store.schema``. All are append-only: the delivery's own inbox row is never
changed, so its history is the row, its replays, its resolution and the digest that told of
it."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Index,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

from service.store.column_types import JsonDocument, Position, UtcDateTime


class ReplayResult(StrEnum):
    APPENDED = "appended"  # the delivery now reads, and its facts were new
    DUPLICATE = "duplicate"  # it reads, and its facts were already recorded
    CONFLICT = "conflict"  # it reads, and a fact of the same key was recorded otherwise
    UNREADABLE = "unreadable"  # it still does not read (reason says why)


def delivery_history_tables(metadata: MetaData) -> tuple[Table, Table, Table]:
    results = ", ".join(repr(str(result)) for result in ReplayResult)
    # Every replay of a delivery, by whom and with what result.
    replays = Table(
        "delivery_replays",
        metadata,
        Column("id", Position, primary_key=True, autoincrement=True),
        Column("delivery_id", BigInteger, nullable=False),
        Column("replayed_at", UtcDateTime, nullable=False),
        Column("replayed_by", String(100), nullable=False),
        Column("result", String(20), nullable=False),
        Column("reason", String(500), nullable=True),
        Column("positions", JsonDocument, nullable=False),
        CheckConstraint(f"result IN ({results})", name="result"),
        Index("ix_delivery_replays_delivery_id", "delivery_id"),
        sqlite_autoincrement=True,
    )
    # An operator's word that a dead letter or a conflict needs nothing more (the first
    # version stands, the sender was told, …): at most one per delivery, never changed or
    # deleted. The delivery then leaves the queue of deliveries waiting for an operator.
    resolutions = Table(
        "delivery_resolutions",
        metadata,
        Column("id", Position, primary_key=True, autoincrement=True),
        Column("delivery_id", BigInteger, nullable=False),
        Column("resolved_at", UtcDateTime, nullable=False),
        Column("resolved_by", String(100), nullable=False),
        Column("reason", String(500), nullable=False),
        UniqueConstraint("delivery_id"),
        sqlite_autoincrement=True,
    )
    # Which deliveries a digest told people about (service.alerting), once acknowledged: one
    # row per delivery, so each is told once, whatever order their rows committed in.
    notices = Table(
        "delivery_notices",
        metadata,
        Column("delivery_id", BigInteger, primary_key=True),
        Column("notified_at", UtcDateTime, nullable=False),
        Column("message_id", String(100), nullable=False),
    )
    return replays, resolutions, notices
