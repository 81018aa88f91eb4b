"""Encrypted notifications over a real socket, on both engines: every shape decrypted and
recorded once, keys rotated by kid, whatever the signature covers; a signed delivery that does
not decrypt kept as a dead letter (never a 5xx, never in clear in a log) and replayed once its
key is configured; an unsigned one refused exactly as any other."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from service.app import create_app
from service.cybersource.keys import CertifiedKey
from service.cybersource.message_encryption import Shape
from service.cybersource.webhook_signature import SignedContent
from service.sandbox.app import create_sandbox_app
from service.sandbox.deliveries import WebhookDeliveries, WebhookTarget
from service.sandbox.errors import ValidationErrors
from service.settings import ConfigurationError, load_settings
from tests.support.cybersource_sandbox import MERCHANT, drive, new_invoice
from tests.support.delivery_log import OPERATOR, READ, ledger
from tests.support.encryption import (
    KEY_PASSWORD,
    encrypted_for,
    key_files,
    notification_key,
    replaced_token,
    token_of,
)
from tests.support.server import serving
from tests.support.webhooks import (
    WEBHOOK_KEY,
    WEBHOOK_KEY_ID,
    WEBHOOK_KEYS_SETTING,
    WEBHOOK_PATH,
    encode,
    invoice_notification,
    signed_headers,
)

PAYER_NAME = "Zelda Quux-Encrypted"
PAYER_EMAIL = "zelda.quux@encrypted.example"


@pytest.fixture(scope="module")
def current_key() -> CertifiedKey:
    return notification_key("7030519352760180401")


@pytest.fixture(scope="module")
def next_key() -> CertifiedKey:
    return notification_key("7030519352760180402")


@pytest.fixture
def both_keys(tmp_path: Path, current_key: CertifiedKey, next_key: CertifiedKey) -> str:
    return key_files(tmp_path, current_key, next_key)


@pytest.fixture
def api(database_url: str, both_keys: str) -> Iterator[httpx.Client]:
    with decrypting_ledger(database_url, both_keys) as client:
        yield client


def decrypting_ledger(database_url: str, keys: str, **settings: Any) -> Any:
    return ledger(
        database_url,
        notification_decryption_keys=keys,
        notification_decryption_key_password=KEY_PASSWORD,
        **settings,
    )


def notification(number: str, notification_id: str | None = None) -> bytes:
    return encode(
        invoice_notification(
            number, notification_id=notification_id, payerName=PAYER_NAME, emailTo=PAYER_EMAIL
        )
    )


def post(api: httpx.Client, body: bytes, signed: bytes | None = None, **signing: Any) -> Any:
    """Post ``body`` signed over ``signed`` (default: the body as sent)."""
    headers = signed_headers(body if signed is None else signed, **signing)
    return api.post(WEBHOOK_PATH, content=body, headers=headers)


def deliveries(api: httpx.Client) -> list[Any]:
    answer = api.get("/v1/deliveries", headers=OPERATOR)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


def invoice(api: httpx.Client, number: str, position: int) -> Any:
    return api.get(f"/v1/invoices/{number}", params={"minPosition": position}, headers=READ)


@pytest.mark.parametrize("shape", list(Shape))
def test_every_shape_signed_as_received_is_decrypted_and_recorded_once(
    api: httpx.Client, current_key: CertifiedKey, shape: Shape
) -> None:
    clear = notification(f"INV-E-{shape.value}")
    body = encrypted_for(current_key, clear, shape)
    assert PAYER_NAME.encode() not in body
    assert post(api, body).json() == {"status": "accepted"}
    # Cybersource's retry, encrypted afresh: the same notification.
    retry = encrypted_for(current_key, clear, shape)
    assert retry != body
    assert post(api, retry).json() == {"status": "duplicate"}
    [duplicate, accepted] = deliveries(api)
    assert (accepted["outcome"], accepted["signedContent"]) == ("accepted", "raw")
    assert duplicate["outcome"] == "duplicate"
    detail = api.get(f"/v1/deliveries/{accepted['deliveryId']}", headers=OPERATOR).json()
    assert detail["body"].encode() == body  # the inbox keeps what arrived: encrypted
    assert len(detail["positions"]) == 1
    shown = invoice(api, f"INV-E-{shape.value}", detail["positions"][0])
    assert (shown.status_code, shown.json()["balanceAmount"]) == (200, "102.00")


def test_an_encrypted_payload_signed_in_the_payload_form_counts_once_across_retries(
    api: httpx.Client, current_key: CertifiedKey
) -> None:
    clear = notification("INV-E-PF")
    for expected in ("accepted", "duplicate"):
        body = encrypted_for(current_key, clear, Shape.PAYLOAD)  # encrypted afresh each time
        answer = post(api, body, signed_content=SignedContent.PAYLOAD)
        assert answer.json() == {"status": expected}
    assert deliveries(api)[-1]["signedContent"] == "payload"


@pytest.mark.parametrize(
    ("shape", "signed_content", "recorded_as"),
    [
        (Shape.ENC_DATA, SignedContent.RAW, "decrypted_raw"),
        (Shape.BARE, SignedContent.RAW, "decrypted_raw"),
        (Shape.ENCRYPTED_REQUEST, SignedContent.PAYLOAD, "decrypted_payload"),
        # The plaintext is the payload, written as JSON.stringify writes it: both forms match.
        (Shape.PAYLOAD, SignedContent.PAYLOAD, "decrypted_raw"),
    ],
)
def test_a_signature_over_the_decrypted_notification_is_accepted_too(
    api: httpx.Client,
    current_key: CertifiedKey,
    shape: Shape,
    signed_content: SignedContent,
    recorded_as: str,
) -> None:
    clear = notification(f"INV-D-{shape.value}")
    body = encrypted_for(current_key, clear, shape)
    assert post(api, body, signed=clear, signed_content=signed_content).json() == {
        "status": "accepted"
    }
    retry = encrypted_for(current_key, clear, shape)
    assert post(api, retry, signed=clear, signed_content=signed_content).json() == {
        "status": "duplicate"
    }
    assert deliveries(api)[-1]["signedContent"] == recorded_as


def test_keys_are_chosen_by_kid_so_both_sides_of_a_rotation_decrypt(
    api: httpx.Client, current_key: CertifiedKey, next_key: CertifiedKey
) -> None:
    for index, key in enumerate((current_key, next_key)):
        body = encrypted_for(key, notification(f"INV-R-{index}"), Shape.ENC_DATA)
        assert post(api, body).json() == {"status": "accepted"}
    metrics = api.get("/metrics").text
    for key in (current_key, next_key):
        assert (
            f'ledger_notification_decryptions_total{{kid="{key.kid}",outcome="decrypted"}} 1.0'
            in metrics
        )
        assert (
            f'ledger_certificate_expiry_timestamp_seconds{{kid="{key.kid}",use="notification_decryption"}}'
            in metrics
        )


def broken_deliveries(current_key: CertifiedKey, stranger: CertifiedKey) -> dict[str, bytes]:
    """Signed bodies that will not decrypt, by the reason the inbox gives."""
    clear = notification("INV-BROKEN")
    good = encrypted_for(current_key, clear, Shape.ENC_DATA)
    token = token_of(good)
    parts = token.split(b".")
    tag = bytearray(base64.urlsafe_b64decode(parts[4] + b"=" * (-len(parts[4]) % 4)))
    tag[-1] ^= 0x40
    tampered = b".".join([*parts[:4], base64.urlsafe_b64encode(bytes(tag)).rstrip(b"=")])
    header = json.loads(base64.urlsafe_b64decode(parts[0] + b"=" * (-len(parts[0]) % 4)))
    other_algorithm = base64.urlsafe_b64encode(
        json.dumps({**header, "enc": "A128GCM"}).encode()
    ).rstrip(b"=")
    return {
        "unknown kid": encrypted_for(stranger, clear, Shape.ENC_DATA),
        "the key does not open it": encrypted_for(
            stranger, clear, Shape.ENCRYPTED_REQUEST, kid=current_key.kid
        ),
        "not a compact JWE": replaced_token(good, token[: len(token) // 2]),
        "tag mismatch": replaced_token(good, tampered),
        "not RSA-OAEP-256 with A256GCM": replaced_token(
            good, b".".join([other_algorithm, *parts[1:]])
        ),
    }


def test_a_signed_delivery_that_does_not_decrypt_is_a_dead_letter_with_its_reason(
    database_url: str, tmp_path: Path, current_key: CertifiedKey
) -> None:
    stranger = notification_key("9999")
    broken = broken_deliveries(current_key, stranger)
    with (
        decrypting_ledger(database_url, key_files(tmp_path, current_key)) as api,
        capture_logs() as logs,
    ):
        answers = {reason: post(api, body) for reason, body in broken.items()}
        rows = {row["reason"]: row for row in deliveries(api)}
        metrics = api.get("/metrics").text
    # One answer for every failure: the reason is the inbox's, not the sender's to learn.
    assert {(a.status_code, a.json()["error"], a.json()["detail"]) for a in answers.values()} == {
        (422, "unusable_body", "the encrypted notification could not be decrypted; it is kept"
         " for review")
    }  # fmt: skip
    for reason in broken:
        row = next(row for text, row in rows.items() if text.startswith(f"undecryptable: {reason}"))
        assert (row["outcome"], row["replayable"]) == ("rejected", True)
    for outcome in ("unknown_kid", "wrong_key", "malformed", "tag_mismatch"):
        assert f'ledger_notification_decryptions_total{{kid="",outcome="{outcome}"}} 1.0' in metrics
    logged = json.dumps(logs, default=str)
    assert PAYER_NAME not in logged and PAYER_EMAIL not in logged
    assert "INV-BROKEN" not in logged


def test_an_unverified_encrypted_delivery_is_refused_alike_whether_or_not_it_decrypts(
    api: httpx.Client, current_key: CertifiedKey
) -> None:
    clear = notification("INV-FORGED")
    decryptable = encrypted_for(current_key, clear, Shape.ENC_DATA)
    undecryptable = replaced_token(decryptable, b"eyJhbGciOiJub25lIn0.a.b.c.d")
    forged = {"v-c-signature": signed_headers(b"something else")["v-c-signature"]}
    answers = [
        api.post(WEBHOOK_PATH, content=body, headers={**signed_headers(body), **forged})
        for body in (decryptable, undecryptable)
    ]
    assert [(a.status_code, a.json()) for a in answers] == 2 * [
        (401, {"error": "bad_signature", "detail": "the signature does not match the body"})
    ]
    assert all(row["bodyBytes"] is None for row in deliveries(api))


def test_clear_fields_nested_too_deep_beside_the_jwe_are_never_a_5xx(
    api: httpx.Client, current_key: CertifiedKey
) -> None:
    # Anyone holding the certificate can encrypt; the nesting must not crash the reading that
    # happens before the signature is known to be good.
    body = encrypted_for(current_key, notification("INV-DEEP"), Shape.ENC_DATA)
    body = body[:-1] + b',"x":' + b"[" * 600 + b"]" * 600 + b"}"
    forged = {"v-c-signature": signed_headers(b"something else")["v-c-signature"]}
    refused = api.post(WEBHOOK_PATH, content=body, headers={**signed_headers(body), **forged})
    assert refused.status_code == 401, refused.text
    signed = post(api, body)
    assert signed.status_code in (200, 422), signed.text


def test_a_dead_letter_for_a_key_configured_later_is_replayed_and_counts_once(
    database_url: str, tmp_path: Path, current_key: CertifiedKey, next_key: CertifiedKey
) -> None:
    clear = notification("INV-LATER", notification_id="n-later")
    body = encrypted_for(next_key, clear, Shape.ENCRYPTED_REQUEST)
    with decrypting_ledger(database_url, key_files(tmp_path, current_key)) as before:
        assert post(before, body).status_code == 422
        [dead_letter] = deliveries(before)
        assert dead_letter["reason"] == "undecryptable: unknown kid"
        replayed = before.post(
            f"/v1/deliveries/{dead_letter['deliveryId']}/replay", headers=OPERATOR
        ).json()
        assert (replayed["result"], replayed["reason"]) == (
            "unreadable",
            "undecryptable: unknown kid",
        )
    later = key_files(tmp_path, current_key, next_key)
    with decrypting_ledger(database_url, later) as after:
        path = f"/v1/deliveries/{dead_letter['deliveryId']}/replay"
        first = after.post(path, headers=OPERATOR).json()
        assert first["result"] == "appended" and len(first["positions"]) == 1
        assert after.post(path, headers=OPERATOR).json()["result"] == "duplicate"
        # Cybersource's retry, now decryptable, is the same notification.
        retry = encrypted_for(next_key, clear, Shape.ENCRYPTED_REQUEST)
        assert post(after, retry).json() == {"status": "duplicate"}
        shown = invoice(after, "INV-LATER", first["positions"][0])
        assert (shown.status_code, shown.json()["balanceAmount"]) == (200, "102.00")


def test_an_encrypted_delivery_without_any_key_configured_is_kept_for_later(
    database_url: str, current_key: CertifiedKey
) -> None:
    with ledger(database_url) as api:
        response = post(api, encrypted_for(current_key, notification("INV-NOKEY"), Shape.BARE))
        assert response.status_code == 422
        assert deliveries(api)[0]["reason"] == "undecryptable: no decryption key is configured"


def test_a_key_file_that_cannot_be_used_stops_start_up_naming_it(
    database_url: str, tmp_path: Path, current_key: CertifiedKey
) -> None:
    good = key_files(tmp_path, current_key)
    broken = tmp_path / "broken.p12"
    broken.write_bytes(b"not a key")
    settings = load_settings(
        database_url=database_url,
        webhook_keys=WEBHOOK_KEYS_SETTING,
        notification_decryption_keys=f"{good},{broken}",
        notification_decryption_key_password=KEY_PASSWORD,
    )
    with pytest.raises(ConfigurationError) as raised:
        create_app(settings)
    assert str(broken) in str(raised.value)
    assert KEY_PASSWORD not in str(raised.value)
    wrong_password = load_settings(
        database_url=database_url,
        notification_decryption_keys=good,
        notification_decryption_key_password="not the password",
    )
    with pytest.raises(ConfigurationError, match=good):
        create_app(wrong_password)


@pytest.mark.parametrize(
    ("shape", "covers"),
    [
        (Shape.BARE, "encrypted"),
        (Shape.ENC_DATA, "decrypted"),
        (Shape.ENCRYPTED_REQUEST, "encrypted"),
        (Shape.PAYLOAD, "decrypted"),
    ],
)
def test_the_sandbox_sends_encrypted_notifications_that_the_ledger_records(
    database_url: str,
    both_keys: str,
    current_key: CertifiedKey,
    next_key: CertifiedKey,
    shape: Shape,
    covers: str,
) -> None:
    with decrypting_ledger(database_url, both_keys) as api:
        target = WebhookTarget(str(api.base_url.join(WEBHOOK_PATH)), WEBHOOK_KEY_ID, WEBHOOK_KEY)
        sandbox_app = create_sandbox_app([MERCHANT], deliveries=WebhookDeliveries(target))
        state = sandbox_app.state.sandbox
        state.register_notification_certificate(
            MERCHANT.merchant_id,
            current_key.certificate_pem(),
            ["invoicing.customer.invoice.send"],
            shape,
            covers,
        )
        # A rotation: payments are encrypted for the next key.
        state.register_notification_certificate(
            MERCHANT.merchant_id,
            next_key.certificate_pem(),
            ["invoicing.customer.invoice.partial-payment"],
            shape,
            covers,
        )
        with serving(sandbox_app) as sandbox_url:
            new_invoice(sandbox_url, "SBX-1", "80.00", allowPartialPayments=True)
            drive(sandbox_url, "/invoices/SBX-1/send")
            drive(sandbox_url, "/invoices/SBX-1/pay", {"amount": "30.00", "transactionId": "t1"})
            log = wait_for_deliveries(sandbox_url, 2)
        assert [entry["outcome"] for entry in log["notifications"]] == 2 * ["acknowledged"]
        rows = deliveries(api)
        assert [row["outcome"] for row in rows] == ["accepted", "accepted"]
        assert {row["signedContent"] for row in rows} <= {
            "raw",
            "payload",
            "decrypted_raw",
            "decrypted_payload",
        }
        metrics = api.get("/metrics").text
        for key in (current_key, next_key):
            decrypted = (
                f'ledger_notification_decryptions_total{{kid="{key.kid}",outcome="decrypted"}}'
            )
            assert f"{decrypted} 1.0" in metrics


def wait_for_deliveries(sandbox_url: str, count: int) -> Any:
    deadline = time.monotonic() + 30
    while True:
        log = httpx.get(f"{sandbox_url}/sandbox/deliveries").json()
        if log["acknowledged"] + log["failed"] >= count and log["pending"] == 0:
            return log
        assert time.monotonic() < deadline, log
        time.sleep(0.05)


def test_the_sandbox_refuses_a_certificate_it_cannot_use() -> None:
    sandbox = create_sandbox_app([MERCHANT]).state.sandbox
    with pytest.raises(ValidationErrors):
        sandbox.register_notification_certificate(
            MERCHANT.merchant_id, b"not a certificate", ["invoicing.customer.invoice.send"]
        )
    with pytest.raises(ValidationErrors):
        sandbox.register_notification_certificate(
            "no-such-organization", b"", ["invoicing.customer.invoice.send"]
        )
