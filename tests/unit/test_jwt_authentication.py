"""Certificate (JWT) authentication: every header and claim equal to what Cybersource's own SDK
produces for the same request, and the checks the sandbox makes in Cybersource's place."""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from joserfc import jws
from joserfc.jwk import RSAKey

from service.cybersource.http_signature import SignatureMismatch
from service.cybersource.jwt_authentication import (
    CertificateCredentials,
    MerchantCertificate,
    bearer_token,
    verify_bearer,
)
from service.cybersource.keys import CertifiedKey, generate_certified_key
from tests.support.cybersource_sdk import sdk_jwt, sdk_jwt_config

HOST = "apitest.cybersource.com"
PASSWORD = "p12-password"
BODIES = {
    "GET": None,
    "POST": '{"customerInformation":{"name":"Zoë"},"invoiceInformation":{"dueDate":"2027-01-31"}}',
    "PUT": '{"orderInformation":{"amountDetails":{"totalAmount":"102.00","currency":"USD"}}}',
}


@pytest.fixture(scope="module")
def merchant_key() -> CertifiedKey:
    return generate_certified_key("acme_merchant", "7030519352760180401")


@pytest.fixture(scope="module")
def credentials(merchant_key: CertifiedKey) -> CertificateCredentials:
    return CertificateCredentials("acme_merchant", merchant_key)


def decoded(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, claims, _ = token.split(".")
    return tuple(json.loads(base64.urlsafe_b64decode(part + "==")) for part in (header, claims))  # type: ignore[return-value]


@pytest.mark.parametrize("method", ["GET", "POST", "PUT"])
def test_header_and_claims_equal_the_official_sdks(
    method: str,
    merchant_key: CertifiedKey,
    credentials: CertificateCredentials,
    tmp_path: Path,
) -> None:
    p12 = tmp_path / "acme_merchant.p12"
    p12.write_bytes(merchant_key.pkcs12(PASSWORD.encode()))
    path = (
        "/invoicing/v2/invoices?offset=0&limit=50"
        if method == "GET"
        else "/invoicing/v2/invoices/A-1"
    )
    body = BODIES[method]
    before = int(time.time())
    sdk_header, sdk_claims = decoded(
        sdk_jwt(sdk_jwt_config(HOST, "acme_merchant", p12, PASSWORD), method, path, body)
    )
    ours = credentials.authenticate(
        method=method, host=HOST, path_and_query=path,
        body=(body or "").encode(), organization_id="acme_merchant", now=time.time(),
    )  # fmt: skip
    assert set(ours) == {"authorization"}  # the SDK sends no other authentication header
    scheme, token = ours["authorization"].split(" ")
    assert scheme == "Bearer"
    our_header, our_claims = decoded(token)

    assert our_header == sdk_header == {"kid": "7030519352760180401", "alg": "RS256", "typ": "JWT"}
    # jti is a fresh UUID4 and iat the second of signing: equal in kind, not in value.
    for claims in (sdk_claims, our_claims):
        assert uuid.UUID(claims.pop("jti")).version == 4
        assert before <= claims["iat"] <= int(time.time())
        assert claims.pop("exp") - claims.pop("iat") == 120
    assert our_claims == sdk_claims
    assert ("digest" in our_claims) is (method != "GET")


def test_a_portfolio_key_is_issued_by_the_portfolio_for_its_organization(tmp_path: Path) -> None:
    portfolio_key = generate_certified_key("portfolio", "5500")
    p12 = tmp_path / "portfolio.p12"
    p12.write_bytes(portfolio_key.pkcs12(PASSWORD.encode()))
    # The SDK's meta key: the portfolio's certificate, the child's merchant id. (A string: the
    # SDK logs its configuration through ast.literal_eval, which refuses JSON's true.)
    config = sdk_jwt_config(
        HOST, "child-1", p12, PASSWORD, use_metakey="true", portfolio_id="portfolio",
        key_alias="portfolio",
    )  # fmt: skip
    sdk_header, sdk_claims = decoded(sdk_jwt(config, "GET", "/invoicing/v2/invoices/7", None))
    portfolio = CertificateCredentials("portfolio", portfolio_key, ("child-1",))
    token = bearer_token(
        portfolio, method="GET", host=HOST, path_and_query="/invoicing/v2/invoices/7",
        body=b"", organization_id="child-1", issued_at=1, token_id="x",
    )  # fmt: skip
    our_header, our_claims = decoded(token)
    assert our_header == sdk_header
    assert (our_claims["iss"], our_claims["v-c-merchant-id"]) == ("portfolio", "child-1")
    assert (sdk_claims["iss"], sdk_claims["v-c-merchant-id"]) == ("portfolio", "child-1")
    with pytest.raises(ValueError, match="does not act for"):
        bearer_token(
            portfolio, method="GET", host=HOST, path_and_query="/", body=b"",
            organization_id="stranger", issued_at=1, token_id="x",
        )  # fmt: skip


class Request:
    """One request as the sandbox sees it, and what it checks it against."""

    def __init__(self, credentials: CertificateCredentials, method: str = "POST") -> None:
        self.certificates = {credentials.key.kid: credentials.public()}
        self.method, self.path, self.body = method, "/invoicing/v2/invoices", b'{"a":1}'
        self.now = 1_800_000_000.0
        self.token = bearer_token(
            credentials, method=method, host=HOST, path_and_query=self.path, body=self.body,
            organization_id=credentials.merchant_id, issued_at=int(self.now),
            token_id="0f8fad5b-d9cb-469f-a165-70867728950e",
        )  # fmt: skip

    def verify(self, **changes: Any) -> str:
        arguments: dict[str, Any] = {
            "method": self.method, "host": HOST, "path_and_query": self.path,
            "authorization": f"Bearer {self.token}", "body": self.body, "now": self.now,
        }  # fmt: skip
        arguments |= changes
        return verify_bearer(self.certificates, **arguments).organization_id


def test_the_sandbox_accepts_a_token_for_its_request(credentials: CertificateCredentials) -> None:
    assert Request(credentials).verify() == "acme_merchant"
    assert Request(credentials, "GET").verify(body=b"") == "acme_merchant"
    with pytest.raises(SignatureMismatch, match="a GET carries no body"):
        Request(credentials, "GET").verify(body=b'{"a":1}')


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"now": 1_800_000_000.0 + 121}, "expired"),
        ({"now": 1_800_000_000.0 - 61}, "issued in the future"),
        ({"method": "PUT"}, "request-method"),
        ({"path_and_query": "/invoicing/v2/invoices/other"}, "request-resource-path"),
        ({"host": "api.cybersource.com"}, "request-host"),
        ({"body": b'{"a":2}'}, "digest"),
        ({"authorization": "Basic abc"}, "not 'Bearer <JWT>'"),
        ({"authorization": "Bearer not-a-jwt"}, "no readable JWT"),
    ],
)
def test_the_sandbox_refuses_a_token_that_does_not_fit(
    credentials: CertificateCredentials, change: dict[str, Any], reason: str
) -> None:
    with pytest.raises(SignatureMismatch, match=reason):
        Request(credentials).verify(**change)


def test_the_sandbox_refuses_a_token_signed_by_another_key(
    credentials: CertificateCredentials,
) -> None:
    # Same kid, another private key: only the certificate Cybersource holds decides.
    impostor = CertificateCredentials(
        "acme_merchant", generate_certified_key("acme_merchant", credentials.key.kid)
    )
    request = Request(credentials)
    request.token = Request(impostor).token
    with pytest.raises(SignatureMismatch, match="signature does not verify"):
        request.verify()
    request.token = Request(CertificateCredentials("x", generate_certified_key("x", "9"))).token
    with pytest.raises(SignatureMismatch, match="unknown kid"):
        request.verify()


def test_the_sandbox_refuses_a_tampered_claim(credentials: CertificateCredentials) -> None:
    request = Request(credentials)
    header, claims, signature = request.token.split(".")
    forged = json.loads(base64.urlsafe_b64decode(claims + "=="))
    forged["v-c-merchant-id"] = "someone-else"
    encoded = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    request.token = f"{header}.{encoded}.{signature}"
    with pytest.raises(SignatureMismatch, match="signature does not verify"):
        request.verify()


def test_the_sandbox_refuses_an_unsigned_token(credentials: CertificateCredentials) -> None:
    request = Request(credentials)
    _, claims, _ = request.token.split(".")
    none = (
        base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": credentials.key.kid}).encode())
        .rstrip(b"=")
        .decode()
    )
    request.token = f"{none}.{claims}."
    with pytest.raises(SignatureMismatch, match="alg RS256"):
        request.verify()


def forged(credentials: CertificateCredentials, header: dict[str, Any], **claims: Any) -> str:
    """A token signed with the merchant's own key, but not as the SDK makes one."""
    request = Request(credentials)
    _, payload, _ = request.token.split(".")
    merged = json.loads(base64.urlsafe_b64decode(payload + "==")) | claims
    key = RSAKey.import_key(credentials.key.private_key)
    return jws.serialize_compact(header, json.dumps(merged), key, algorithms=["RS256"])


@pytest.mark.parametrize(
    ("header", "claims", "reason"),
    [
        ({"alg": "RS256"}, {}, "typ JWT"),
        ({"alg": "RS256", "typ": "JWT"}, {"iat": 1_800_000_050, "exp": 1_800_000_001}, "expire"),
        ({"alg": "RS256", "typ": "JWT"}, {"jti": "reused-every-time"}, "jti must be a UUID"),
    ],
)
def test_the_sandbox_refuses_a_token_the_sdk_would_not_make(
    credentials: CertificateCredentials, header: dict[str, Any], claims: dict[str, Any], reason: str
) -> None:
    request = Request(credentials)
    request.token = forged(credentials, {**header, "kid": credentials.key.kid}, **claims)
    with pytest.raises(SignatureMismatch, match=reason):
        request.verify()


def test_a_key_without_its_certificate_cannot_sign(merchant_key: CertifiedKey) -> None:
    bare = CertifiedKey(merchant_key.private_key, None, "bare.key")
    with pytest.raises(ValueError, match="needs the key's certificate"):
        CertificateCredentials("acme_merchant", bare)


def test_the_repr_names_the_key_and_shows_none(credentials: CertificateCredentials) -> None:
    assert "7030519352760180401" in repr(credentials)
    assert isinstance(credentials.public(), MerchantCertificate)
    assert credentials.public().kid == credentials.key.kid
