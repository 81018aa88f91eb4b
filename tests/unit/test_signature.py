from __future__ import annotations

import base64
import json

import pytest

from service.cybersource.webhook_signature import (
    SignatureRejected,
    SignedContent,
    WebhookVerifier,
    compute_signature,
    parse_signature_header,
    sign,
)

KEY_ID = "bf44c857-b182-bb05-e053-34b8d30a7a72"
KEY = b"k" * 32
NOW_MS = 1_685_062_183_054
BODY = json.dumps(
    {"notificationId": "n-1", "payloads": [{"data": {"invoiceNumber": "1", "balanceAmount": 1.50}}]}
).encode()


def verifier(
    signed_content: SignedContent = SignedContent.AUTO,
    keys: dict[str, bytes] | None = None,
    tolerance_seconds: int = 3600,
) -> WebhookVerifier:
    return WebhookVerifier(
        keys or {KEY_ID: KEY}, tolerance_seconds=tolerance_seconds, signed_content=signed_content
    )


def rejection_reason(verifier: WebhookVerifier, header: str | None, body: bytes = BODY) -> str:
    with pytest.raises(SignatureRejected) as rejected:
        verifier.verify(header, body, NOW_MS)
    return rejected.value.reason


def test_a_raw_body_signature_is_verified_and_reported_as_raw() -> None:
    header = sign(KEY_ID, KEY, BODY, NOW_MS, SignedContent.RAW)
    verified = verifier().verify(header, BODY, NOW_MS)
    assert (verified.key_id, verified.signed_content) == (KEY_ID, SignedContent.RAW)


def test_a_payload_signature_is_hmac_of_t_dot_javascript_stringify_of_the_payload() -> None:
    # As Cybersource's plugins compute it: JSON.stringify prints 1.50 as 1.5, with no spaces.
    message = f'{NOW_MS}.[{{"data":{{"invoiceNumber":"1","balanceAmount":1.5}}}}]'.encode()
    signature = base64.b64encode(compute_signature(KEY, message)).decode()
    header = f"t={NOW_MS};keyId={KEY_ID};sig={signature}"
    verified = verifier().verify(header, BODY, NOW_MS)
    assert verified.signed_content is SignedContent.PAYLOAD


def test_pinning_one_form_refuses_the_other() -> None:
    raw_header = sign(KEY_ID, KEY, BODY, NOW_MS, SignedContent.RAW)
    payload_header = sign(KEY_ID, KEY, BODY, NOW_MS, SignedContent.PAYLOAD)
    assert rejection_reason(verifier(SignedContent.PAYLOAD), raw_header) == "bad_signature"
    assert rejection_reason(verifier(SignedContent.RAW), payload_header) == "bad_signature"
    assert verifier(SignedContent.RAW).verify(raw_header, BODY, NOW_MS).key_id == KEY_ID
    assert verifier(SignedContent.PAYLOAD).verify(payload_header, BODY, NOW_MS).key_id == KEY_ID


def test_a_tampered_body_is_refused() -> None:
    header = sign(KEY_ID, KEY, BODY, NOW_MS)
    assert rejection_reason(verifier(), header, BODY.replace(b"1.5", b"0.5")) == "bad_signature"


def test_a_signature_made_with_another_key_is_refused() -> None:
    header = sign(KEY_ID, b"x" * 32, BODY, NOW_MS)
    assert rejection_reason(verifier(), header) == "bad_signature"


def test_an_unknown_key_id_is_refused() -> None:
    header = sign("retired-key", KEY, BODY, NOW_MS)
    assert rejection_reason(verifier(), header) == "unknown_key_id"


def test_several_keys_verify_at_once_for_rotation() -> None:
    keys = {"old": b"o" * 32, "new": b"n" * 32}
    for key_id, key in keys.items():
        header = sign(key_id, key, BODY, NOW_MS)
        assert verifier(keys=keys).verify(header, BODY, NOW_MS).key_id == key_id


def test_a_timestamp_older_than_the_tolerance_is_stale() -> None:
    header = sign(KEY_ID, KEY, BODY, NOW_MS - 3601 * 1000)
    assert rejection_reason(verifier(tolerance_seconds=3600), header) == "stale_timestamp"


def test_a_forward_dated_timestamp_is_accepted_only_within_the_clock_skew() -> None:
    """The skew is its own bound: a long age tolerance does not admit a far-future t."""
    within = sign(KEY_ID, KEY, BODY, NOW_MS + 300 * 1000)
    beyond = sign(KEY_ID, KEY, BODY, NOW_MS + 301 * 1000)
    assert verifier(tolerance_seconds=3600).verify(within, BODY, NOW_MS).key_id == KEY_ID
    assert rejection_reason(verifier(tolerance_seconds=3600), beyond) == "future_timestamp"


@pytest.mark.parametrize("skew_seconds", [-300, 0, 300])
def test_a_timestamp_within_the_tolerance_is_accepted(skew_seconds: int) -> None:
    header = sign(KEY_ID, KEY, BODY, NOW_MS + skew_seconds * 1000)
    assert verifier(tolerance_seconds=300).verify(header, BODY, NOW_MS).key_id == KEY_ID


@pytest.mark.parametrize("digits", ["\u00b2", "\u0661\u0662", "\uff11"])
def test_unicode_digits_in_t_are_malformed_not_a_crash(digits: str) -> None:
    header = f"t={digits};keyId={KEY_ID};sig=AAAA"
    assert rejection_reason(verifier(), header) == "malformed_signature"


def test_the_payload_form_is_not_computed_for_a_body_over_its_size_bound() -> None:
    large = json.dumps(
        {"payloads": [{"data": {"invoiceNumber": "1", "subject": "x" * 5000}}]}
    ).encode()
    header = sign(KEY_ID, KEY, large, NOW_MS, SignedContent.PAYLOAD)
    bounded = WebhookVerifier(
        {KEY_ID: KEY},
        tolerance_seconds=3600,
        signed_content=SignedContent.AUTO,
        payload_form_max_bytes=len(large) - 1,
    )
    assert rejection_reason(bounded, header, large) == "bad_signature"
    assert verifier().verify(header, large, NOW_MS).signed_content is SignedContent.PAYLOAD


def test_a_payload_form_verification_names_the_signed_payload_by_digest() -> None:
    header = sign(KEY_ID, KEY, BODY, NOW_MS, SignedContent.PAYLOAD)
    verified = verifier().verify(header, BODY, NOW_MS)
    renamed = BODY.replace(b'"n-1"', b'"n-2"')  # the notification id is outside the payload
    assert verifier().verify(header, renamed, NOW_MS).payload_digest == verified.payload_digest
    assert verified.payload_digest is not None and len(verified.payload_digest) == 64


def test_a_lone_surrogate_in_an_unsigned_body_is_a_bad_signature_not_a_crash() -> None:
    body = b'{"payloads": [{"data": {"payerName": "\\ud800"}}]}'
    header = f"t={NOW_MS};keyId={KEY_ID};sig={base64.b64encode(b'x' * 32).decode()}"
    assert rejection_reason(verifier(), header, body) == "bad_signature"
    signed = sign(KEY_ID, KEY, body, NOW_MS, SignedContent.PAYLOAD)
    assert verifier().verify(signed, body, NOW_MS).signed_content is SignedContent.PAYLOAD


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing_signature"),
        ("", "missing_signature"),
        ("garbage", "malformed_signature"),
        (f"t={NOW_MS};keyId={KEY_ID}", "malformed_signature"),
        (f"t=soon;keyId={KEY_ID};sig=AAAA", "malformed_signature"),
        (f"t={NOW_MS};keyId={KEY_ID};sig=not base64!", "malformed_signature"),
        (f"t={NOW_MS};sig=AAAA", "malformed_signature"),
    ],
)
def test_malformed_headers_are_refused_with_a_named_reason(header: str | None, reason: str) -> None:
    assert rejection_reason(verifier(), header) == reason


def test_header_parts_may_be_spaced_and_signatures_end_in_padding() -> None:
    signature = base64.b64encode(compute_signature(KEY, f"{NOW_MS}.".encode() + BODY)).decode()
    assert signature.endswith("=")
    parsed = parse_signature_header(f" t={NOW_MS} ; keyId={KEY_ID} ; sig={signature} ")
    assert parsed.signature == base64.b64decode(signature)
    assert verifier().verify(f"t={NOW_MS}; keyId={KEY_ID}; sig={signature}", BODY, NOW_MS)


def test_a_body_that_is_not_json_can_still_match_the_raw_form() -> None:
    body = b"not json at all"
    header = sign(KEY_ID, KEY, body, NOW_MS)
    assert verifier().verify(header, body, NOW_MS).signed_content is SignedContent.RAW
