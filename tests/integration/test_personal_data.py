"""Personal data sealed in the event store: facts recorded in clear sealed later without
losing one, erasure of payers however their facts name them, and the master key checked."""

from __future__ import annotations

import base64
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from service.bootstrap import command_ledger
from service.domain.events import EventSource, InvoiceEventType, NewEvent, RecordedEvent
from service.domain.invoice import fold
from service.domain.payloads import NotificationReceived, StatedFields, encode
from service.settings import ConfigurationError, load_settings
from service.store.events.base import AppendOutcome, EventStore
from service.store.events.for_engine import event_store_for
from service.store.personal_data.data_keys import (
    PersonalDataKeyMismatch,
    PersonalDataKeyMissing,
    SqlDataKeys,
)
from service.store.personal_data.erasure import erase_payer
from service.store.personal_data.recorded_facts import seal_recorded_facts
from service.store.personal_data.sealing import MasterKey
from service.store.personal_data.sealing_store import PersonalDataEventStore
from service.store.schema import events
from tests.support.cli import invoice_ledger
from tests.support.personal_data import MASTER_KEY, OTHER_MASTER_KEY, every_stored_value

pytestmark = pytest.mark.anyio

BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)


def _master(key: str = MASTER_KEY) -> MasterKey:
    return MasterKey(base64.b64decode(key))


def _fact(
    number: str, key: str, seconds: int, name: str | None, email: str | None, balance: str
) -> NewEvent:
    return NewEvent(
        stream_id=number,
        type=InvoiceEventType.INVOICE_SENT,
        occurred_at=BASE_TIME + timedelta(seconds=seconds),
        source=EventSource.WEBHOOK,
        idempotency_key=key,
        data=encode(
            NotificationReceived(
                "org",
                number,
                StatedFields(currency="USD", customer_name=name, customer_email=email),
            )
        )
        | {"balanceAmount": balance},
    )


def _sealing(engine: AsyncEngine, key: str | None = MASTER_KEY) -> PersonalDataEventStore:
    master = None if key is None else _master(key)
    return PersonalDataEventStore(event_store_for(engine), SqlDataKeys(engine, master))


async def _everything(store: EventStore) -> list[RecordedEvent]:
    return await store.read_after(0, 10_000)


async def test_facts_recorded_in_clear_are_sealed_later_without_losing_one(
    engine: AsyncEngine,
) -> None:
    clear = _sealing(engine, None)
    facts = [
        _fact("INV-1", "k1", 0, "Tanya Lee", "tanya@example.com", "10.00"),
        _fact("INV-1", "k2", 5, None, None, "4.00"),
        _fact("INV-2", "k3", 1, "Bob Stone", None, "7.00"),
        _fact("INV-3", "k4", 2, None, "Ann@Example.com", "3.00"),
    ]
    for fact in facts:
        await clear.append([fact])
    before = await _everything(clear)
    assert "tanya@example.com" in await every_stored_value(engine)

    sealed = await seal_recorded_facts(engine, _master(), batch_size=2)
    assert (sealed.scanned, sealed.sealed, sealed.digests_unmatched) == (4, 3, 0)
    again = await seal_recorded_facts(engine, _master())
    assert again.sealed == 0  # sealed facts are passed over: a run can start again anywhere

    store = _sealing(engine)
    after = await _everything(store)
    assert [event.data for event in after] == [event.data for event in before]
    for number in ("INV-1", "INV-2", "INV-3"):
        stream = [event for event in after if event.stream_id == number]
        assert fold(number, stream, "org") == fold(
            number, [event for event in before if event.stream_id == number], "org"
        )
    stored = await every_stored_value(engine)
    for clear_text in ("tanya", "bob stone", "ann@example.com"):
        assert clear_text not in stored
    # A retry of a fact sealed after the fact is still the same fact.
    [result] = await store.append([facts[0]])
    assert result.outcome is AppendOutcome.DUPLICATE


async def test_the_database_refuses_any_other_change_to_a_recorded_fact(
    engine: AsyncEngine,
) -> None:
    await _sealing(engine, None).append(
        [_fact("INV-1", "k1", 0, "Tanya Lee", "tanya@example.com", "10.00")]
    )
    async with engine.connect() as connection:
        data = (await connection.execute(select(events.c.data))).scalar_one()
    tampered = {**data, "balanceAmount": "0.00", "customer": {"payer": "x", "sealed": "y"}}
    for change in ({"data": tampered}, {"data": data}, {"stream_id": "INV-2"}):
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as connection:
                await connection.execute(update(events).values(**change))


async def test_a_fact_without_a_customer_cannot_be_given_one(engine: AsyncEngine) -> None:
    fact = _fact("INV-1", "k1", 0, None, None, "10.00")
    without = {name: value for name, value in fact.data.items() if name != "customer"}
    await _sealing(engine, None).append([dataclasses.replace(fact, data=without)])
    async with engine.connect() as connection:
        data = (await connection.execute(select(events.c.data))).scalar_one()
    assert "customer" not in data
    sealed = {**data, "customer": {"payer": "x", "sealed": "y"}}
    # Neither an unchanged row nor one given a sealed customer it never had gets through.
    for change in ({"data": data}, {"data": sealed}):
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as connection:
                await connection.execute(update(events).values(**change))


PAYERS = st.sampled_from(["tanya@example.com", "bob@example.org", None])
NAMES = st.sampled_from(["Tanya Lee", "Bob Stone", None])


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    facts=st.lists(
        st.tuples(st.integers(1, 4), NAMES, PAYERS, st.sampled_from(["", " ", "UPPER"])),
        min_size=1,
        max_size=12,
    ),
    erase_by_name=st.booleans(),
)
async def test_erasing_a_payer_erases_their_facts_only_however_the_email_is_written(
    engine: AsyncEngine,
    facts: list[tuple[int, str | None, str | None, str]],
    erase_by_name: bool,
) -> None:
    store = _sealing(engine)
    run = uuid.uuid4().hex[:8]  # one database for every example: each its own invoices
    stated = []
    for index, (invoice, name, email, spelling) in enumerate(facts):
        written = email
        if email is not None:
            written = email.upper() if spelling == "UPPER" else f"{spelling}{email}{spelling}"
        number = f"{run}-{invoice}"
        await store.append([_fact(number, f"{run}-{index}", index, name, written, "1.00")])
        stated.append((name, email))
    if erase_by_name:
        erased_identity = lambda name, email: email is None and name == "Tanya Lee"  # noqa: E731
        erasure = await erase_payer(
            engine, SqlDataKeys(engine, _master()), store, email=None, name=" tanya  LEE",
            reason="asked", recorded_by="test",
        )  # fmt: skip
    else:
        erased_identity = lambda name, email: email == "tanya@example.com"  # noqa: E731
        erasure = await erase_payer(
            engine, SqlDataKeys(engine, _master()), store, email="TANYA@example.com ",
            name=None, reason="asked", recorded_by="test",
        )  # fmt: skip
    read = [
        event
        for event in await _everything(store)
        if event.stream_id.startswith(run) and event.type != InvoiceEventType.PERSONAL_DATA_ERASED
    ]
    assert erasure.facts >= sum(erased_identity(*pair) for pair in stated)
    for event, (name, email) in zip(read, stated, strict=True):
        customer = event.data.get("customer")
        if erased_identity(name, email):
            assert customer == {"name": None, "email": None, "erased": True}
        elif name is not None or email is not None:
            assert customer is not None and customer.get("name") == name
            assert (customer.get("email") or "").strip().lower() == (email or "")


async def test_a_wrong_master_key_stops_a_command_before_anything_is_read(
    database_url: str,
) -> None:
    settings = load_settings(database_url=database_url, personal_data_key=MASTER_KEY)
    async with command_ledger(settings) as ledger:
        await ledger.event_store.append(
            [_fact("INV-1", "k1", 0, "Tanya Lee", "tanya@example.com", "10.00")]
        )
    for other in (OTHER_MASTER_KEY, None):
        wrong = load_settings(database_url=database_url, personal_data_key=other)
        with pytest.raises(PersonalDataKeyMismatch, match="LEDGER_PERSONAL_DATA_KEY"):
            async with command_ledger(wrong):
                pass
    ran = invoice_ledger(
        "events", "--invoice", "INV-1",
        environment={"LEDGER_DATABASE_URL": database_url,
                     "LEDGER_PERSONAL_DATA_KEY": OTHER_MASTER_KEY},
    )  # fmt: skip
    assert ran.returncode == 2
    assert b"LEDGER_PERSONAL_DATA_KEY" in ran.stderr and b"Tanya" not in ran.stdout


async def test_erasing_without_a_master_key_is_refused_naming_the_setting(
    database_url: str,
) -> None:
    settings = load_settings(database_url=database_url)
    async with command_ledger(settings) as ledger:
        with pytest.raises(PersonalDataKeyMissing, match="LEDGER_PERSONAL_DATA_KEY"):
            await erase_payer(
                ledger.engine, ledger.data_keys, ledger.event_store, email="a@b.c", name=None,
                reason="asked", recorded_by="test",
            )  # fmt: skip
    ran = invoice_ledger(
        "erase", "--customer-email", "a@b.c", "--reason", "asked",
        environment={"LEDGER_DATABASE_URL": database_url},
    )  # fmt: skip
    assert ran.returncode == 2 and b"LEDGER_PERSONAL_DATA_KEY" in ran.stderr


def test_a_master_key_that_is_not_32_bytes_of_base64_is_refused_naming_the_setting() -> None:
    for value in ("not base64!", "c2hvcnQ="):
        with pytest.raises(ConfigurationError, match="LEDGER_PERSONAL_DATA_KEY") as refused:
            load_settings(personal_data_key=value)
        assert value not in str(refused.value)
