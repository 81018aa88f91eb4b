"""Replaying what the inbox kept, on both engines, including deliveries kept before the inbox
recorded their headers and signature time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.domain.identity import organization_named_by
from service.ingest.corrections import CorrectionRefused, DeliveryCorrections
from service.ingest.replay import DeliveryReplayer, NotReplayable
from service.store.delivery_log import DeliveryFilters, SqlDeliveryLog
from service.store.events.base import EventStore, InboxEntry
from service.store.schema import InboxOutcome, ReplayResult
from tests.support.webhooks import encode, invoice_notification

pytestmark = pytest.mark.anyio

RECEIVED_AT = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


def replayer(event_store: EventStore) -> tuple[SqlDeliveryLog, DeliveryReplayer]:
    delivery_log = SqlDeliveryLog(event_store._engine)
    return delivery_log, DeliveryReplayer(delivery_log, event_store, items_per_delivery_max=10)


async def test_a_dead_letter_kept_before_headers_were_replays_with_its_time_of_receipt(
    event_store: EventStore,
) -> None:
    document = invoice_notification("INV-OLD", notification_id="n-old")
    del document["eventDate"]  # the time of the fact is then the signature's
    await event_store.record_inbox(
        InboxEntry(
            received_at=RECEIVED_AT,
            outcome=InboxOutcome.REJECTED,
            reason="unusable_body: a rule of an older reader",
            key_id="key-1",
            signed_content="raw",
            body=encode(document),
        )
    )
    delivery_log, replaying = replayer(event_store)
    [kept] = await delivery_log.deliveries(DeliveryFilters(), limit=10)
    assert (kept.headers, kept.signed_at) == (None, None)

    outcome = await replaying.replay(kept.delivery_id, "test")
    assert outcome.result is ReplayResult.APPENDED
    [event] = await event_store.read_stream("INV-OLD")
    assert event.occurred_at == RECEIVED_AT
    assert event.position == outcome.positions[0]


async def test_bulk_replay_takes_dead_letters_by_reason_and_passes_over_what_already_reads(
    event_store: EventStore,
) -> None:
    for index in range(3):
        body = encode(invoice_notification(f"INV-{index}", notification_id=f"n-bulk-{index}"))
        await event_store.record_inbox(
            InboxEntry(
                received_at=RECEIVED_AT,
                outcome=InboxOutcome.REJECTED,
                reason="unusable_body: too many items" if index else "bad_signature",
                key_id="key-1" if index else None,
                signed_content="raw" if index else None,
                body=body if index else None,
            )
        )
    delivery_log, replaying = replayer(event_store)
    dead_letters = DeliveryFilters(outcome=InboxOutcome.REJECTED, reason_prefix="unusable_body")
    first = [outcome async for outcome in replaying.replay_all(dead_letters, "test")]
    assert [outcome.result for outcome in first] == [ReplayResult.APPENDED] * 2
    assert [outcome async for outcome in replaying.replay_all(dead_letters, "test")] == []
    limited = DeliveryFilters(outcome=InboxOutcome.REJECTED)
    assert [o async for o in replaying.replay_all(limited, "test", replays_max=1)] == []

    [unsigned] = await delivery_log.deliveries(DeliveryFilters(reason_prefix="bad_"), limit=10)
    with pytest.raises(NotReplayable) as refused:
        await replaying.replay(unsigned.delivery_id, "test")
    assert refused.value.code == "unsigned"


async def test_a_foreign_organizations_dead_letter_reads_once_the_merchants_say_it_may(
    event_store: EventStore,
) -> None:
    body = encode(invoice_notification("INV-F", notification_id="n-f", organizationID="beta"))
    await event_store.record_inbox(
        InboxEntry(
            received_at=RECEIVED_AT,
            outcome=InboxOutcome.REJECTED,
            reason="foreign_organization: organization 'beta' is not one the signing key's"
            " merchant acts for",
            key_id="acme-hook",
            signed_content="raw",
            body=body,
        )
    )
    delivery_log = SqlDeliveryLog(event_store._engine)
    [kept] = await delivery_log.deliveries(DeliveryFilters(), limit=10)

    def replaying(organizations: frozenset[str]) -> DeliveryReplayer:
        return DeliveryReplayer(
            delivery_log, event_store, items_per_delivery_max=10,
            organizations_by_key={"acme-hook": organizations},
        )  # fmt: skip

    still = await replaying(frozenset({"acme"})).replay(kept.delivery_id, "test")
    assert (still.result, still.reason) == (ReplayResult.UNREADABLE, kept.reason)
    assert await event_store.read_stream("INV-F") == []
    now = await replaying(frozenset({"acme", "beta"})).replay(kept.delivery_id, "test")
    assert now.result is ReplayResult.APPENDED
    [event] = await event_store.read_stream("INV-F")
    assert organization_named_by(event.data) == "beta"


async def test_a_conflict_about_an_organization_the_key_no_longer_signs_for_is_not_corrected(
    event_store: EventStore,
) -> None:
    """acme's key signed INV-C for acme, then a second version naming beta (a conflict, kept
    while acme acted for beta). Now that acme acts for acme only, the conflicting version
    is not one acme's key may state: a correction reads it as replay does, and refuses."""
    first = encode(invoice_notification("INV-C", notification_id="n-c", organizationID="acme"))
    second = encode(invoice_notification("INV-C", notification_id="n-c", organizationID="beta"))
    for outcome, body in ((InboxOutcome.REJECTED, first), (InboxOutcome.CONFLICT, second)):
        await event_store.record_inbox(
            InboxEntry(
                received_at=RECEIVED_AT,
                outcome=outcome,
                reason="test",
                key_id="acme-hook",
                signed_content="raw",
                body=body,
            )
        )
    delivery_log = SqlDeliveryLog(event_store._engine)
    recorded, conflict = sorted(
        await delivery_log.deliveries(DeliveryFilters(), limit=10), key=lambda d: d.delivery_id
    )
    acme_only = {"acme-hook": frozenset({"acme"})}
    replaying = DeliveryReplayer(
        delivery_log, event_store, items_per_delivery_max=10, organizations_by_key=acme_only
    )
    assert (await replaying.replay(recorded.delivery_id, "test")).result is ReplayResult.APPENDED
    corrections = DeliveryCorrections(
        delivery_log, event_store, items_per_delivery_max=10, organizations_by_key=acme_only
    )
    with pytest.raises(CorrectionRefused) as refused:
        await corrections.correct(conflict.delivery_id, "the second version is right", "test")
    assert refused.value.code == "no_conflict_left"
    [event] = await event_store.read_stream("INV-C")
    assert organization_named_by(event.data) == "acme"


async def test_a_dead_letter_signed_with_a_key_no_merchant_holds_now_records_no_organization(
    event_store: EventStore,
) -> None:
    """A merchant's key signed a notification about beta, not its merchant's; the key was
    then taken out of the merchants file (it had leaked). Replayed, it still says nothing of
    beta: with merchants' keys, a key no merchant holds signs for no organization."""
    body = encode(invoice_notification("INV-L", notification_id="n-l", organizationID="beta"))
    await event_store.record_inbox(
        InboxEntry(
            received_at=RECEIVED_AT,
            outcome=InboxOutcome.REJECTED,
            reason="foreign_organization: organization 'beta' is not one the signing key's"
            " merchant acts for",
            key_id="leaked-hook",
            signed_content="raw",
            body=body,
        )
    )
    delivery_log = SqlDeliveryLog(event_store._engine)
    [kept] = await delivery_log.deliveries(DeliveryFilters(), limit=10)
    replaying = DeliveryReplayer(
        delivery_log, event_store, items_per_delivery_max=10,
        organizations_by_key={"acme-hook": frozenset({"acme"}), "beta-hook": frozenset({"beta"})},
    )  # fmt: skip
    outcome = await replaying.replay(kept.delivery_id, "test")
    assert outcome.result is ReplayResult.UNREADABLE, outcome
    assert outcome.reason is not None and outcome.reason.startswith("foreign_organization")
    assert await event_store.read_stream("INV-L") == []
