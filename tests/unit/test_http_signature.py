from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from service.cybersource.http_signature import (
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


# A portfolio's key (a "meta key"): owned by the portfolio, acting for its organizations.
PORTFOLIO = MerchantCredentials(
    merchant_id="ledgerportfolio",
    key_id="7d1c0e2b-9a4f-4c3e-8b6d-5f0a1e2d3c4b",
    secret_key=base64.b64decode("yBJxy6LjM2TmcPGu+GaJrHtkke25fPpUX+UY6/L/1tE="),
    organization_ids=("ledgerchild1", "ledgerchild2"),
)


def test_a_portfolio_key_signs_for_a_child_organization_and_is_accepted() -> None:
    target = "/invoicing/v2/invoices/2670"
    headers = sign_request(
        PORTFOLIO, method="GET", host="h", path_and_query=target, date=DATE,
        organization_id="ledgerchild2",
    )  # fmt: skip
    assert headers["v-c-merchant-id"] == "ledgerchild2"
    keys = {PORTFOLIO.key_id: PORTFOLIO}
    signer = verify_request(keys, method="GET", path_and_query=target, headers=headers, body=b"")
    assert signer is PORTFOLIO


def test_verify_request_refuses_an_organization_the_key_may_not_act_for() -> None:
    target = "/invoicing/v2/invoices/2670"
    headers = sign_request(
        PORTFOLIO, method="GET", host="h", path_and_query=target, date=DATE,
        organization_id="ledgerchild1",
    )  # fmt: skip
    # The header is not in the signing string (the portfolio is): only the key's
    # organizations keep a request from acting for someone else's.
    headers["v-c-merchant-id"] = "someoneelse"
    keys = {PORTFOLIO.key_id: PORTFOLIO}
    with pytest.raises(SignatureMismatch, match="does not belong to the key"):
        verify_request(keys, method="GET", path_and_query=target, headers=headers, body=b"")
    with pytest.raises(ValueError, match="does not act for organization 'someoneelse'"):
        sign_request(
            PORTFOLIO, method="GET", host="h", path_and_query=target, date=DATE,
            organization_id="someoneelse",
        )  # fmt: skip


def test_the_signing_string_names_the_portfolio_not_the_organization_acted_for() -> None:
    target = "/invoicing/v2/invoices?offset=0&limit=10&status=PAID"
    headers = sign_request(
        PORTFOLIO, method="GET", host="apitest.cybersource.com", path_and_query=target,
        date=DATE, organization_id="ledgerchild1",
    )  # fmt: skip

    # Computed here from the documented algorithm (cybersource.md §3.1), not by the module.
    def documented_signature(merchant_line: str) -> str:
        signing_string = (
            "host: apitest.cybersource.com\n"
            f"date: {DATE}\n"
            f"request-target: get {target}\n"
            f"v-c-merchant-id: {merchant_line}"
        )
        secret = base64.b64decode("yBJxy6LjM2TmcPGu+GaJrHtkke25fPpUX+UY6/L/1tE=")
        digest = hmac.new(secret, signing_string.encode("utf-8"), hashlib.sha256).digest()
        return base64.b64encode(digest).decode()

    signed = dict(part.strip().split("=", 1) for part in headers["signature"].split(", "))
    assert signed["signature"].strip('"') == documented_signature("ledgerportfolio")
    assert signed["signature"].strip('"') != documented_signature("ledgerchild1")
    assert headers["v-c-merchant-id"] == "ledgerchild1"
