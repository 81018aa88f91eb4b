"""An erasure reaches the payer's encrypted deliveries too: a dead letter that arrived before
its key was configured, or an event type the ledger ignores, names the payer only once
decrypted, and the ledger's own keys would bring the payer back on a replay."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from service.cybersource.keys import CertifiedKey, generate_certified_key
from service.cybersource.message_encryption import NotificationKeyring, Shape
from service.settings import resolve_database_url
from service.store.database import create_engine
from service.store.schema import inbox
from tests.support.cli import invoice_ledger
from tests.support.delivery_log import OPERATOR, ledger
from tests.support.encryption import KEY_PASSWORD, encrypted_for, key_files
from tests.support.personal_data import MASTER_KEY
from tests.support.webhooks import WEBHOOK_PATH, encode, invoice_notification, signed_headers

PAYER_NAME = "Wilhelmina Erasable"
PAYER_EMAIL = "wilhelmina@erasable.example"
IGNORED_TYPE = "invoicing.customer.invoice.not-modelled"


@pytest.fixture(scope="module")
def key() -> CertifiedKey:
    return generate_certified_key("acme_merchant", "7030519352760189999")


def notification(number: str, event_type: str = "invoicing.customer.invoice.send") -> bytes:
    return encode(
        invoice_notification(number, event_type, payerName=PAYER_NAME, emailTo=PAYER_EMAIL)
    )


def post(api: httpx.Client, body: bytes, **signing: str) -> int:
    return api.post(WEBHOOK_PATH, content=body, headers=signed_headers(body, **signing)).status_code


def bodies_naming_the_payer(database_url: str, key: CertifiedKey) -> int:
    """Inbox bodies that name the payer once the ledger's own key has decrypted them."""

    async def read() -> list[bytes]:
        engine = create_engine(resolve_database_url(database_url))
        try:
            async with engine.connect() as connection:
                rows = await connection.execute(select(inbox.c.body))
                return [bytes(body) for (body,) in rows if body is not None]
        finally:
            await engine.dispose()

    keyring = NotificationKeyring([key])
    clear = [keyring.clear_body(body) or b"" for body in asyncio.run(read())]
    return sum(PAYER_EMAIL.encode() in text or PAYER_NAME.encode() in text for text in clear)


def erase(database_url: str, **environment: str) -> dict[str, object]:
    result = invoice_ledger(
        "erase", "--customer-email", PAYER_EMAIL, "--reason", "request 7", "--json",
        environment={
            "LEDGER_DATABASE_URL": database_url,
            "LEDGER_PERSONAL_DATA_KEY": MASTER_KEY,
            **environment,
        },
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_encrypted_bodies_that_name_the_payer_are_redacted_too(
    database_url: str, tmp_path: Path, key: CertifiedKey
) -> None:
    keys = key_files(tmp_path, key)
    # Before any key: a dead letter holding the encrypted body.
    with ledger(database_url, personal_data_key=MASTER_KEY) as api:
        assert post(api, encrypted_for(key, notification("ER-1"), Shape.ENC_DATA)) == 422
    decrypting = {
        "personal_data_key": MASTER_KEY,
        "notification_decryption_keys": keys,
        "notification_decryption_key_password": KEY_PASSWORD,
    }
    with ledger(database_url, **decrypting) as api:
        # An event type the ledger does not model, encrypted: ignored, its body kept.
        ignored = encrypted_for(key, notification("ER-1", IGNORED_TYPE), Shape.BARE)
        assert post(api, ignored, event_type=IGNORED_TYPE) == 200
    assert bodies_naming_the_payer(database_url, key) == 2

    erasure = erase(
        database_url,
        LEDGER_NOTIFICATION_DECRYPTION_KEYS=keys,
        LEDGER_NOTIFICATION_DECRYPTION_KEY_PASSWORD=KEY_PASSWORD,
    )
    assert (erasure["deliveriesRedacted"], erasure["encryptedBodiesUnsearched"]) == (2, 0)
    assert bodies_naming_the_payer(database_url, key) == 0
    with ledger(database_url, **decrypting) as api:
        # Nothing is left to replay the payer back from.
        for row in api.get("/v1/deliveries", headers=OPERATOR).json()["items"]:
            replayed = api.post(f"/v1/deliveries/{row['deliveryId']}/replay", headers=OPERATOR)
            assert replayed.status_code != 200 or replayed.json()["result"] != "appended"


def test_encrypted_bodies_no_key_opens_are_counted_as_unsearched(
    database_url: str, key: CertifiedKey
) -> None:
    with ledger(database_url, personal_data_key=MASTER_KEY) as api:
        assert post(api, encrypted_for(key, notification("ER-2"), Shape.ENC_DATA)) == 422
        assert post(api, notification("ER-3")) == 200
    erasure = erase(database_url)
    assert (erasure["deliveriesRedacted"], erasure["encryptedBodiesUnsearched"]) == (1, 1)
