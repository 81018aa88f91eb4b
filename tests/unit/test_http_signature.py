from __future__ import annotations

import base64

import pytest

from service.reconciler.http_signature import (
    MerchantCredentials,
    SignatureMismatch,
    sign_request,
    verify_request,
)

# The test credentials of Cybersource's Python SDK, and the signature its own code computes.
SDK_TEST_CREDENTIALS = MerchantCredentials(
    merchant_id="testrest",
    key_id="08c94330-f618-42a3-b09d-e1e43be5efda",
    secret_key=base64.b64decode("yBJxy6LjM2TmcPGu+GaJrHtkke25fPpUX+UY6/L/1tE="),
)
DATE = "Thu, 18 Jul 2019 00:18:03 GMT"


def test_the_documented_vector_for_get_invoice_details() -> None:
    headers = sign_request(
        SDK_TEST_CREDENTIALS,
        method="GET",
        host="apitest.cybersource.com",
        path_and_query="/invoicing/v2/invoices/2670",
        date=DATE,
    )
    assert headers["signature"] == (
        'keyid="08c94330-f618-42a3-b09d-e1e43be5efda", algorithm="HmacSHA256", '
        'headers="host date request-target v-c-merchant-id", '
        'signature="SUT34h27H7QxbLvyH+t7XtFrd9bifwVFv7buSe5l2PQ="'
    )
    assert "digest" not in headers  # never on GET


def test_posts_sign_a_digest_of_the_exact_body() -> None:
    body = b'{"clientRequestAction":"CREATE"}'
    headers = sign_request(
        SDK_TEST_CREDENTIALS, method="POST", host="h", path_and_query="/kms/egress/v2/keys-sym",
        date=DATE, body=body,
    )  # fmt: skip
    assert 'headers="host date request-target digest v-c-merchant-id"' in headers["signature"]
    keys = {SDK_TEST_CREDENTIALS.key_id: SDK_TEST_CREDENTIALS}
    verify_request(keys, method="POST", path_and_query="/kms/egress/v2/keys-sym",
                   headers=headers, body=body)  # fmt: skip
    with pytest.raises(SignatureMismatch, match="Digest"):
        verify_request(keys, method="POST", path_and_query="/kms/egress/v2/keys-sym",
                       headers=headers, body=body + b" ")  # fmt: skip


def test_the_query_string_is_part_of_the_signed_request_target() -> None:
    target = "/invoicing/v2/invoices?offset=0&limit=10&status=PAID"
    headers = sign_request(
        SDK_TEST_CREDENTIALS, method="GET", host="h", path_and_query=target, date=DATE
    )
    keys = {SDK_TEST_CREDENTIALS.key_id: SDK_TEST_CREDENTIALS}
    verify_request(keys, method="GET", path_and_query=target, headers=headers, body=b"")
    with pytest.raises(SignatureMismatch, match="signature does not match"):
        verify_request(keys, method="GET", path_and_query=target.replace("PAID", "SENT"),
                       headers=headers, body=b"")  # fmt: skip
