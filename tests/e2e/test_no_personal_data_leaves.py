"""A payer's name and e-mail address never leave the service through a failure: not in an
error answer, not in /readyz, not in a log line or a logged traceback. The real ``serve``
process, with its own logging, driven through every failure path a sender can provoke."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from service.cybersource.message_encryption import Shape
from tests.support.encryption import (
    KEY_PASSWORD,
    encrypted_for,
    key_files,
    notification_key,
    replaced_token,
    token_of,
)
from tests.support.process import serving_process
from tests.support.proxy import outage_proxy
from tests.support.webhooks import (
    WEBHOOK_KEYS_SETTING,
    encode,
    invoice_notification,
    signed_headers,
)

WEBHOOK_PATH = "/webhooks/cybersource"
PAYER_NAME = "Zelda Quux-Personal"
PAYER_EMAIL = "zelda.quux@personal.example"
NOTIFICATION_KEY = notification_key("8080")


def notification(invoice_number: str, **data: object) -> bytes:
    return encode(
        invoice_notification(invoice_number, payerName=PAYER_NAME, emailTo=PAYER_EMAIL, **data)
    )


def encrypted_deliveries() -> list[tuple[bytes, int]]:
    stranger = notification_key("1111")
    good = encrypted_for(NOTIFICATION_KEY, notification("INV-PD-E1"), Shape.ENC_DATA)
    token = token_of(good)
    return [
        (good, 422),  # the same payer e-mail as INV-PD-1: the constraint refuses it
        (
            encrypted_for(
                NOTIFICATION_KEY, notification("INV-PD-E2", balance=PAYER_EMAIL), Shape.BARE
            ),
            422,
        ),
        (encrypted_for(stranger, notification("INV-PD-E3"), Shape.ENCRYPTED_REQUEST), 422),
        (
            replaced_token(
                good, token[:-4] + (b"AAAA" if not token.endswith(b"AAAA") else b"BBBB")
            ),
            422,
        ),
        (encrypted_for(NOTIFICATION_KEY, notification("INV-PD-E4"), Shape.PAYLOAD), 422),
    ]


def add_unique_index_on_payer_email(database_url: str) -> None:
    """A constraint a delivery can break, whose violation message quotes the value."""
    if database_url.startswith("sqlite"):
        with sqlite3.connect(make_url(database_url).database or "") as connection:
            connection.execute(
                "CREATE UNIQUE INDEX payer_email ON events (json_extract(data, '$.customer.email'))"
            )
        return
    url = make_url(database_url)

    async def create() -> None:
        connection = await asyncpg.connect(
            host=url.host, port=url.port, user=url.username, database=url.database
        )
        try:
            await connection.execute(
                "CREATE UNIQUE INDEX payer_email ON events ((data->'customer'->>'email'))"
            )
        finally:
            await connection.close()

    asyncio.run(create())


def test_no_personal_data_leaves_through_any_failure(database_url: str, tmp_path: Path) -> None:
    add_unique_index_on_payer_email(database_url)
    postgresql = database_url.startswith("postgresql")
    url = make_url(database_url)
    answers: list[str] = []
    with outage_proxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        service_url = (
            url.set(port=proxy.port).render_as_string(hide_password=False)
            if postgresql
            else database_url
        )
        environment = {
            "LEDGER_DATABASE_URL": service_url,
            "LEDGER_WEBHOOK_KEYS": WEBHOOK_KEYS_SETTING,
            "LEDGER_NOTIFICATION_DECRYPTION_KEYS": key_files(tmp_path, NOTIFICATION_KEY),
            "LEDGER_NOTIFICATION_DECRYPTION_KEY_PASSWORD": KEY_PASSWORD,
        }
        with (
            serving_process(environment, tmp_path / "serve.log") as served,
            httpx.Client(base_url=served.base_url, timeout=30) as client,
        ):

            def post(body: bytes, headers: dict[str, str], expected: int) -> None:
                response = client.post(WEBHOOK_PATH, content=body, headers=headers)
                answers.append(response.text)
                assert response.status_code == expected, response.text

            first = notification("INV-PD-1")
            post(first, signed_headers(first), 200)
            # A bad signature, an unusable body, and a payer e-mail quoted by a broken constraint.
            post(first, {**signed_headers(first), "v-c-signature": "t=1;keyId=x;sig=AAAA"}, 401)
            bad_amount = notification("INV-PD-2", balance=PAYER_EMAIL)
            post(bad_amount, signed_headers(bad_amount), 422)
            same_payer = notification("INV-PD-3")
            post(same_payer, signed_headers(same_payer), 422)
            # Encrypted: breaking the constraint once decrypted (its message quotes the clear
            # e-mail), unusable once decrypted, and not decryptable (a key it lacks, a tag
            # tampered with).
            for body, expected in encrypted_deliveries():
                post(body, signed_headers(body), expected)
            answers.append(client.get("/readyz").text)

            # The database away: a cut network, or a lock held longer than the service waits.
            if postgresql:
                proxy.cut()
            else:
                holder = sqlite3.connect(
                    make_url(database_url).database or "", isolation_level=None
                )
                holder.execute("BEGIN EXCLUSIVE")
            during = notification("INV-PD-4")
            post(during, signed_headers(during), 503)
            answers.append(client.get("/readyz").text)
            if postgresql:
                proxy.restore()
            else:
                holder.execute("ROLLBACK")
                holder.close()
            time.sleep(0.5)  # let the last log lines reach the file
            log = served.log()

    assert "unusable_body: unexpected" in answers[3] or "kept for review" in answers[3]
    for text in [*answers, log]:
        assert PAYER_NAME not in text
        assert PAYER_EMAIL not in text
        assert "INSERT INTO" not in text and "SELECT " not in text
    assert "IntegrityError" in log or "UniqueViolation" in log  # the fault is still located
