"""Each payer's data key, kept wrapped in ``personal_data_keys``: found, made, deleted.

Nothing is cached between calls: an erasure in another process (the ``erase`` command beside
``serve``) deletes a key, and a key kept here would go on sealing and opening with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.store.errors import unavailability_as_store_error
from service.store.personal_data.sealing import MasterKey
from service.store.schema import personal_data_keys

KEY_SETTING = "LEDGER_PERSONAL_DATA_KEY"
# Payers looked up per query: a page of events names at most this many, bounded anyway.
PAYERS_PER_QUERY_MAX = 1000


class PersonalDataKeyMismatch(Exception):
    """The configured master key is not the one this database's data keys were wrapped with,
    or there is none while there are data keys: refusing beats showing sealed text or
    sealing under a second key."""


class PersonalDataKeyMissing(Exception):
    """An operation that needs the master key (erasing, sealing) was asked for without it."""

    def __init__(self, operation: str) -> None:
        super().__init__(
            f"{operation} needs the personal data master key: set {KEY_SETTING}"
            " (base64 of 32 bytes; see docs/personal-data.md)"
        )


class SqlDataKeys:
    def __init__(self, engine: AsyncEngine, master: MasterKey | None) -> None:
        self._engine = engine
        self.master = master

    async def verify(self) -> None:
        """Refuse a master key that did not wrap the stored data keys, and a missing one
        when there are data keys (PersonalDataKeyMismatch, naming the setting)."""
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            stored = await connection.scalar(select(personal_data_keys.c.master_key_id).limit(1))
            if stored is None:
                return
            if self.master is None:
                raise PersonalDataKeyMismatch(
                    f"this database holds sealed personal data: set {KEY_SETTING} to the master"
                    f" key that sealed it (key id {stored})"
                )
            if stored != self.master.key_id:
                rewrapped = await connection.scalar(
                    select(func.count())
                    .select_from(personal_data_keys)
                    .where(personal_data_keys.c.master_key_id == self.master.key_id)
                )
                if not rewrapped:
                    raise PersonalDataKeyMismatch(
                        f"{KEY_SETTING} (key id {self.master.key_id}) is not the master key"
                        f" this database's personal data was sealed with (key id {stored})"
                    )

    async def for_sealing(self, payers: Iterable[str]) -> dict[str, bytes]:
        """Each payer's data key, made for those that have none (a payer erased before gets
        a new one: they reappear from new facts only)."""
        master = self._required_master("sealing personal data")
        async with unavailability_as_store_error(), self._engine.begin() as connection:
            return await keys_for_sealing(connection, master, payers)

    async def for_opening(self, payers: Iterable[str]) -> dict[str, bytes]:
        """The data keys that still exist; an erased payer has none."""
        wanted = sorted(set(payers))
        if not wanted or self.master is None:
            return {}
        async with unavailability_as_store_error(), self._engine.connect() as connection:
            return await _unwrapped(connection, self.master, wanted)

    def _required_master(self, operation: str) -> MasterKey:
        if self.master is None:
            raise PersonalDataKeyMissing(operation)
        return self.master


async def keys_for_sealing(
    connection: AsyncConnection, master: MasterKey, payers: Iterable[str]
) -> dict[str, bytes]:
    wanted = sorted(set(payers))
    if not wanted:
        return {}
    found = await _unwrapped(connection, master, wanted)
    missing = [payer for payer in wanted if payer not in found]
    if missing:
        now = datetime.now(UTC)
        rows = []
        for payer in missing:
            _, wrapped = master.new_data_key(payer)
            rows.append(
                {"payer": payer, "wrapped_key": wrapped, "master_key_id": master.key_id,
                 "created_at": now}
            )  # fmt: skip
        insert = (postgresql_insert if connection.dialect.name == "postgresql" else sqlite_insert)(
            personal_data_keys
        )
        # Another process may make the same payer's key at once: the first one stays, and
        # both read it back.
        await connection.execute(insert.on_conflict_do_nothing(), rows)
        found |= await _unwrapped(connection, master, missing)
    return found


async def delete_key(connection: AsyncConnection, payer: str) -> bool:
    result = await connection.execute(
        delete(personal_data_keys).where(personal_data_keys.c.payer == payer)
    )
    return bool(result.rowcount)


async def _unwrapped(
    connection: AsyncConnection, master: MasterKey, payers: Sequence[str]
) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for start in range(0, len(payers), PAYERS_PER_QUERY_MAX):
        chunk = payers[start : start + PAYERS_PER_QUERY_MAX]
        rows = await connection.execute(
            select(personal_data_keys.c.payer, personal_data_keys.c.wrapped_key).where(
                personal_data_keys.c.payer.in_(chunk)
            )
        )
        for payer, wrapped in rows:
            found[payer] = master.unwrap(payer, bytes(wrapped))
    return found
