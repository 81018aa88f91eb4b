"""Encrypted notifications: every shape recognised, decrypted by the key its kid names, and
every way a JWE can fail said with a reason, whoever encrypted it (joserfc, or the official
SDK's jwcrypto)."""

from __future__ import annotations

import base64
import json
import time
import warnings

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jwe
from joserfc.jwk import RSAKey

from service.cybersource.envelope import parse_body
from service.cybersource.keys import CertifiedKey, generate_certified_key
from service.cybersource.message_encryption import (
    Failure,
    NotificationKeyring,
    Shape,
    Undecryptable,
    encrypt_notification,
    encrypted_notification,
)
from tests.support.webhooks import encode, invoice_notification

with warnings.catch_warnings():
    # The official SDK imports pkg_resources and other deprecated modules.
    warnings.simplefilter("ignore")
    import CyberSource  # noqa: F401  (first: the SDK's own modules import one another in a cycle)
    from authenticationsdk.util.JWEUtility import JWEUtility
    from jwcrypto import jwe as jwcrypto_jwe
    from jwcrypto import jwk as jwcrypto_jwk

# Amounts as JSON numbers whose text must survive (102.10, not 102.1).
NOTIFICATION = encode(invoice_notification("INV-ENC-1", balance="AMOUNT")).replace(
    b'"AMOUNT"', b"102.10"
)


@pytest.fixture(scope="module")
def current_key() -> CertifiedKey:
    return generate_certified_key("acme_merchant", "7030519352760180401")


@pytest.fixture(scope="module")
def next_key() -> CertifiedKey:
    return generate_certified_key("acme_merchant", "7030519352760180402")


def encrypted(key: CertifiedKey, shape: Shape = Shape.ENC_DATA, **options: object) -> bytes:
    assert key.certificate is not None
    return encrypt_notification(NOTIFICATION, key.certificate, shape, **options)  # type: ignore[arg-type]


def opened(keyring: NotificationKeyring, body: bytes) -> bytes:
    found = encrypted_notification(body)
    assert found is not None
    return keyring.decrypt(found).content


def failure(keyring: NotificationKeyring, body: bytes) -> Failure:
    found = encrypted_notification(body)
    assert found is not None
    with pytest.raises(Undecryptable) as raised:
        keyring.decrypt(found)
    return raised.value.failure


@pytest.mark.parametrize("shape", [Shape.BARE, Shape.ENC_DATA, Shape.ENCRYPTED_REQUEST])
def test_a_whole_encrypted_body_decrypts_to_the_notification_byte_for_byte(
    current_key: CertifiedKey, shape: Shape
) -> None:
    body = encrypted(current_key, shape)
    found = encrypted_notification(body)
    assert found is not None and found.shape is shape and not found.beside
    assert opened(NotificationKeyring([current_key]), body) == NOTIFICATION


def test_an_envelope_whose_payload_is_encrypted_reads_as_the_clear_notification(
    current_key: CertifiedKey,
) -> None:
    body = encrypted(current_key, Shape.PAYLOAD)
    assert b"INV-ENC-1" not in body and b"notificationId" in body
    found = encrypted_notification(body)
    assert found is not None and (found.shape, found.field) == (Shape.PAYLOAD, "payloads")
    content = opened(NotificationKeyring([current_key]), body)
    assert parse_body(content) == parse_body(NOTIFICATION)
    assert b'"balanceAmount":102.10' in content  # the amount keeps its exact text


def test_a_payload_that_is_the_bare_jwe_is_recognised(current_key: CertifiedKey) -> None:
    document = parse_body(NOTIFICATION)
    plaintext_payload = json.dumps(document["payloads"], default=str).encode()
    assert current_key.certificate is not None
    token = encrypt_notification(plaintext_payload, current_key.certificate, Shape.BARE).decode()
    document["payloads"] = token
    content = opened(NotificationKeyring([current_key]), json.dumps(document).encode())
    assert parse_body(content)["payloads"] == json.loads(plaintext_payload)


def test_fields_beside_enc_data_fill_only_what_the_decrypted_notification_lacks(
    current_key: CertifiedKey,
) -> None:
    wrapped = json.loads(encrypted(current_key, Shape.ENC_DATA))
    body = json.dumps(
        {"webhookId": "outer-webhook", "productId": "customerInvoicing", **wrapped}
    ).encode()
    found = encrypted_notification(body)
    assert found is not None and found.beside
    content = parse_body(opened(NotificationKeyring([current_key]), body))
    assert content["webhookId"] == json.loads(NOTIFICATION)["webhookId"]  # the encrypted one
    assert content["productId"] == "customerInvoicing"


def test_a_clear_notification_is_not_taken_for_an_encrypted_one() -> None:
    assert encrypted_notification(NOTIFICATION) is None
    assert encrypted_notification(b"not json at all") is None
    assert encrypted_notification(b'{"payload": "eyJhbGciOi but not a token"}') is None
    assert encrypted_notification(b"") is None


def test_the_key_is_chosen_by_the_kid_among_several(
    current_key: CertifiedKey, next_key: CertifiedKey
) -> None:
    keyring = NotificationKeyring([current_key, next_key])
    for key in (current_key, next_key):
        body = encrypted(key)
        found = encrypted_notification(body)
        assert found is not None
        assert keyring.decrypt(found).kid == key.kid
    # A kid may also be the certificate's own serial number, or its fingerprint.
    assert next_key.certificate is not None
    for name in (format(next_key.certificate.serial_number, "x"), next_key.fingerprint):
        assert opened(keyring, encrypted(next_key, kid=name)) == NOTIFICATION


def test_a_jwe_without_a_kid_is_tried_with_every_key(
    current_key: CertifiedKey, next_key: CertifiedKey
) -> None:
    assert next_key.certificate is not None
    public = RSAKey.import_key(next_key.certificate.public_key())  # type: ignore[arg-type]
    token = jwe.encrypt_compact(
        {"alg": "RSA-OAEP-256", "enc": "A256GCM"},
        NOTIFICATION,
        public,
        algorithms=["RSA-OAEP-256", "A256GCM"],
    )
    assert opened(NotificationKeyring([current_key, next_key]), token.encode()) == NOTIFICATION
    assert failure(NotificationKeyring([current_key]), token.encode()) is Failure.WRONG_KEY


def test_a_kid_that_names_no_key_is_still_opened_by_the_key_it_was_made_for(
    current_key: CertifiedKey, next_key: CertifiedKey
) -> None:
    # What Cybersource writes in a notification's kid is not documented (a key id of its own,
    # say): the key the content was encrypted for opens it all the same.
    keyring = NotificationKeyring([current_key, next_key])
    body = encrypted(next_key, kid="cybersource-egress-key-41")
    found = encrypted_notification(body)
    assert found is not None
    assert keyring.decrypt(found).kid == next_key.kid
    assert opened(keyring, body) == NOTIFICATION


def test_the_official_sdks_encryption_decrypts(current_key: CertifiedKey) -> None:
    """The SDK's MLEUtility builds its JWE this way (jwcrypto, kid the subject serialNumber)."""
    assert current_key.certificate is not None
    header = {
        "alg": "RSA-OAEP-256",
        "enc": "A256GCM",
        "kid": current_key.kid,
        "iat": int(time.time()),
    }
    recipient = jwcrypto_jwk.JWK.from_pem(
        current_key.certificate.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    token = jwcrypto_jwe.JWE(plaintext=NOTIFICATION, protected=json.dumps(header))
    token.add_recipient(recipient)
    compact = token.serialize(compact=True)
    for body in (compact.encode(), json.dumps({"encryptedRequest": compact}).encode()):
        assert opened(NotificationKeyring([current_key]), body) == NOTIFICATION


def test_the_official_sdk_decrypts_what_the_sandbox_encrypts(current_key: CertifiedKey) -> None:
    private = jwcrypto_jwk.JWK.from_pem(current_key.private_key_pem())
    token = encrypted(current_key, Shape.BARE).decode()
    assert JWEUtility.decrypt_jwe_using_private_key(private, token) == NOTIFICATION.decode()


def test_an_unknown_kid_is_said(current_key: CertifiedKey, next_key: CertifiedKey) -> None:
    assert failure(NotificationKeyring([current_key]), encrypted(next_key)) is Failure.UNKNOWN_KID


def test_a_wrong_key_under_a_known_kid_is_said(
    current_key: CertifiedKey, next_key: CertifiedKey
) -> None:
    body = encrypted(next_key, kid=current_key.kid)
    assert failure(NotificationKeyring([current_key]), body) is Failure.WRONG_KEY


def test_no_key_configured_is_said(current_key: CertifiedKey) -> None:
    assert failure(NotificationKeyring([]), encrypted(current_key)) is Failure.NO_KEY


@pytest.mark.parametrize(
    ("alg", "enc"),
    [("RSA-OAEP", "A256GCM"), ("RSA-OAEP-256", "A128GCM"), ("RSA-OAEP-256", "A256CBC-HS512")],
)
def test_other_algorithms_are_refused(current_key: CertifiedKey, alg: str, enc: str) -> None:
    assert current_key.certificate is not None
    public = RSAKey.import_key(current_key.certificate.public_key())  # type: ignore[arg-type]
    token = jwe.encrypt_compact(
        {"alg": alg, "enc": enc, "kid": current_key.kid}, b"{}", public, algorithms=[alg, enc]
    )
    body = json.dumps({"encData": token}).encode()
    assert failure(NotificationKeyring([current_key]), body) is Failure.UNSUPPORTED_ALGORITHM


def test_a_truncated_jwe_is_malformed(current_key: CertifiedKey) -> None:
    token = encrypted(current_key, Shape.BARE)
    keyring = NotificationKeyring([current_key])
    assert failure(keyring, token.rsplit(b".", 1)[0]) is Failure.MALFORMED
    assert failure(keyring, json.dumps({"encData": token[:40].decode()}).encode()) is (
        Failure.MALFORMED
    )
    assert failure(keyring, b'{"encryptedRequest": 42}') is Failure.MALFORMED


@pytest.mark.parametrize("part", [2, 3, 4])
def test_a_tampered_iv_ciphertext_or_tag_is_a_tag_mismatch(
    current_key: CertifiedKey, part: int
) -> None:
    parts = encrypted(current_key, Shape.BARE).split(b".")
    raw = bytearray(base64.urlsafe_b64decode(parts[part] + b"=" * (-len(parts[part]) % 4)))
    raw[0] ^= 1
    parts[part] = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=")
    assert failure(NotificationKeyring([current_key]), b".".join(parts)) is Failure.TAG_MISMATCH


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_a_jwe_tampered_anywhere_never_decrypts_to_anything(
    current_key: CertifiedKey, data: st.DataObject
) -> None:
    token = bytearray(encrypted(current_key, Shape.BARE))
    position = data.draw(st.integers(0, len(token) - 1), label="position")
    replacement = data.draw(
        st.sampled_from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."),
        label="replacement",
    )
    if token[position] == replacement:
        return
    token[position] = replacement
    keyring = NotificationKeyring([current_key])
    found = encrypted_notification(bytes(token))
    if found is None:
        return  # no longer even looks like a JWE: the body reads as an unusable clear one
    try:
        result = keyring.decrypt(found)
    except Undecryptable as error:
        assert error.failure in set(Failure) - {Failure.NO_KEY}
        assert "Tanya" not in str(error) and "INV-ENC-1" not in error.reason
    else:
        # Only a change base64url decoding ignores (the last character's spare bits) may pass.
        assert result.plaintext == NOTIFICATION


def test_an_undecryptable_reason_names_the_failure_never_the_content(
    current_key: CertifiedKey, next_key: CertifiedKey
) -> None:
    found = encrypted_notification(encrypted(next_key))
    assert found is not None
    with pytest.raises(Undecryptable) as raised:
        NotificationKeyring([current_key]).decrypt(found)
    assert raised.value.reason == "undecryptable: unknown kid"
    assert (
        repr(NotificationKeyring([current_key]))
        == f"NotificationKeyring(kids=['{current_key.kid}'])"
    )
