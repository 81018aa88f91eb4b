"""Where personal data is sealed and opened: a fact's ``customer`` on its way into the store,
and back out of it. The rest of a fact is never touched."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from service.domain.events import NewEvent, RecordedEvent
from service.domain.payloads import ERASED_CUSTOMER
from service.store.events.base import SealedNewEvent
from service.store.personal_data.sealing import (
    MasterKey,
    SealedCustomer,
    open_customer,
    seal_customer,
)

CUSTOMER = "customer"


def clear_customer(data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The fact's customer when it is stored in clear (not sealed, not erased)."""
    customer = data.get(CUSTOMER)
    if not isinstance(customer, Mapping) or "sealed" in customer or customer.get("erased"):
        return None
    if customer.get("name") is None and customer.get("email") is None:
        return None
    return customer


def payer_of_clear(master: MasterKey, data: Mapping[str, Any]) -> str | None:
    customer = clear_customer(data)
    if customer is None:
        return None
    return master.payer(customer.get("name"), customer.get("email"))


def payers_to_seal(master: MasterKey, facts: Iterable[Mapping[str, Any]]) -> set[str]:
    return {payer for data in facts if (payer := payer_of_clear(master, data)) is not None}


def sealed_data(
    master: MasterKey, keys: Mapping[str, bytes], data: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The data to store and the data its digest covers, or None when nothing is to seal."""
    customer = clear_customer(data)
    payer = payer_of_clear(master, data)
    if customer is None or payer is None:
        return None
    clear = {"name": customer.get("name"), "email": customer.get("email")}
    # The customer is replaced where it stands: the rest of the document keeps its order.
    stored = {**data, CUSTOMER: seal_customer(payer, keys[payer], clear).stored()}
    digested = {**data, CUSTOMER: {"payer": payer, "digest": master.customer_digest(clear)}}
    return stored, digested


def sealed_event(master: MasterKey, keys: Mapping[str, bytes], event: NewEvent) -> NewEvent:
    sealed = sealed_data(master, keys, event.data)
    if sealed is None:
        return event
    stored, digested = sealed
    return SealedNewEvent(
        stream_id=event.stream_id,
        type=event.type,
        occurred_at=event.occurred_at,
        source=event.source,
        idempotency_key=event.idempotency_key,
        data=stored,
        schema_version=event.schema_version,
        time_is_content=event.time_is_content,
        digest_data=digested,
    )


def sealed_payers(events: Iterable[RecordedEvent]) -> set[str]:
    return {
        sealed.payer
        for event in events
        if (sealed := SealedCustomer.found_in(event.data.get(CUSTOMER))) is not None
    }


def opened_events(
    events: Sequence[RecordedEvent], keys: Mapping[str, bytes]
) -> list[RecordedEvent]:
    """The events as they were recorded, each sealed customer opened, or erased where its
    payer's data key is gone."""
    opened = []
    for event in events:
        sealed = SealedCustomer.found_in(event.data.get(CUSTOMER))
        if sealed is None:
            opened.append(event)
            continue
        key = keys.get(sealed.payer)
        # No key, or a later one (the payer was erased, then named again by a new fact): the
        # key this customer was sealed under is gone.
        if key is None or not sealed.sealed_under(key):
            customer = dict(ERASED_CUSTOMER)
        else:
            customer = open_customer(sealed, key)
        opened.append(replace(event, data={**event.data, CUSTOMER: customer}))
    return opened
