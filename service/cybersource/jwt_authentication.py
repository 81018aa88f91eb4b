"""Cybersource's certificate authentication (JWT, RS256), as its Python SDK computes it.

Each request carries ``Authorization: Bearer <JWT>`` and nothing else of authentication (no
Date, Digest, Signature or v-c-merchant-id header: the SDK sends none with a JWT). The token
is signed with the merchant's private key; its header is ``{"kid": <the certificate subject's
serialNumber>, "alg": "RS256", "typ": "JWT"}`` and its claims are:

- ``digest`` (base64 SHA-256 of the body) and ``digestAlgorithm`` ``"SHA-256"``, for POST,
  PUT and PATCH only;
- ``iat`` (seconds) and ``exp`` two minutes later;
- ``request-method`` (upper case), ``request-host`` and ``request-resource-path`` (the path
  with its query string), which bind the token to one request;
- ``iss``: the key's owner (a portfolio's id for its meta key); ``v-c-merchant-id``: the
  organization the call is for; ``jti``: a UUID4; ``v-c-jwt-version`` ``"2"``.

Source: cybersource-rest-client-python ``authenticationsdk/jwt/Token.py`` (``set_token_with_p12``,
``get_payload_claim_set``, ``get_rs256_header``) and ``CyberSource/api_client.py``
(``call_authentication_header``). ``verify_bearer`` is what the sandbox checks in Cybersource's
place.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from service.cybersource.http_signature import METHODS_WITH_BODY, SignatureMismatch
from service.cybersource.keys import CertifiedKey, subject_serial_number

ALGORITHM = "RS256"
JWT_VERSION = "2"
LIFETIME_SECONDS = 120  # the SDK's exp - iat
# How far ahead of the verifier's clock a token's iat may be.
CLOCK_SKEW_SECONDS = 60


@dataclass(frozen=True, repr=False)
class CertificateCredentials:
    """A merchant's (or a portfolio's) certificate and private key: what signs its calls."""

    merchant_id: str
    key: CertifiedKey
    # The organizations this key may act for besides its owner (a portfolio's children).
    organization_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.key.certificate is None:
            raise ValueError(f"{self.key.source}: JWT authentication needs the key's certificate")

    def __repr__(self) -> str:
        return f"CertificateCredentials(merchant_id={self.merchant_id!r}, kid={self.key.kid!r})"

    def may_act_for(self, organization_id: str) -> bool:
        return organization_id == self.merchant_id or organization_id in self.organization_ids

    def authenticate(
        self,
        *,
        method: str,
        host: str,
        path_and_query: str,
        body: bytes,
        organization_id: str,
        now: float,
    ) -> dict[str, str]:
        token = bearer_token(
            self,
            method=method,
            host=host,
            path_and_query=path_and_query,
            body=body,
            organization_id=organization_id,
            issued_at=int(now),
            token_id=str(uuid.uuid4()),
        )
        return {"authorization": f"Bearer {token}"}

    def public(self) -> MerchantCertificate:
        """What Cybersource holds of this key: its certificate."""
        assert self.key.certificate is not None  # checked at construction
        return MerchantCertificate(self.merchant_id, self.key.certificate, self.organization_ids)


@dataclass(frozen=True)
class MerchantCertificate:
    """A merchant's certificate as Cybersource keeps it, to verify the merchant's tokens."""

    merchant_id: str
    certificate: x509.Certificate
    organization_ids: tuple[str, ...] = ()

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        key = self.certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise ValueError("the merchant's certificate does not hold an RSA key")
        return key

    @property
    def kid(self) -> str:
        return subject_serial_number(self.certificate) or str(self.certificate.serial_number)

    def may_act_for(self, organization_id: str) -> bool:
        return organization_id == self.merchant_id or organization_id in self.organization_ids


@dataclass(frozen=True)
class VerifiedBearer:
    merchant: MerchantCertificate
    organization_id: str  # the token's v-c-merchant-id
    token_id: str  # jti: a verifier refuses it a second time while it is valid
    expires: int  # exp, seconds


def body_digest(body: bytes) -> str:
    """The ``digest`` claim: base64 SHA-256 of the body, without the header's ``SHA-256=``."""
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


def claims_for(
    *,
    issuer: str,
    method: str,
    host: str,
    path_and_query: str,
    body: bytes,
    organization_id: str,
    issued_at: int,
    token_id: str,
) -> dict[str, Any]:
    """The claims in the SDK's order (an order no reader depends on)."""
    claims: dict[str, Any] = {}
    if method.upper() in METHODS_WITH_BODY:
        claims |= {"digest": body_digest(body), "digestAlgorithm": "SHA-256"}
    return claims | {
        "iat": issued_at,
        "exp": issued_at + LIFETIME_SECONDS,
        "request-method": method.upper(),
        "request-host": host,
        "request-resource-path": path_and_query,
        "iss": issuer,
        "jti": token_id,
        "v-c-jwt-version": JWT_VERSION,
        "v-c-merchant-id": organization_id,
    }


def bearer_token(
    credentials: CertificateCredentials,
    *,
    method: str,
    host: str,
    path_and_query: str,
    body: bytes,
    organization_id: str,
    issued_at: int,
    token_id: str,
) -> str:
    if not credentials.may_act_for(organization_id):
        raise ValueError(f"this key does not act for organization {organization_id!r}")
    claims = claims_for(
        issuer=credentials.merchant_id,
        method=method,
        host=host,
        path_and_query=path_and_query,
        body=body,
        organization_id=organization_id,
        issued_at=issued_at,
        token_id=token_id,
    )
    header = {"kid": credentials.key.kid, "alg": ALGORITHM, "typ": "JWT"}
    signing_key = RSAKey.import_key(credentials.key.private_key)
    return jwt.encode(header, claims, signing_key, algorithms=[ALGORITHM])


def verify_bearer(
    certificates_by_kid: Mapping[str, MerchantCertificate],
    *,
    method: str,
    host: str,
    path_and_query: str,
    authorization: str,
    body: bytes,
    now: float,
) -> VerifiedBearer:
    """Check a JWT-authenticated request as Cybersource would (the sandbox does)."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise SignatureMismatch("the Authorization header is not 'Bearer <JWT>'")
    merchant = certificates_by_kid.get(_unverified_kid(token.strip()))
    if merchant is None:
        raise SignatureMismatch("unknown kid")
    try:
        verified = jwt.decode(
            token.strip(),
            RSAKey.import_key(merchant.public_key),
            algorithms=[ALGORITHM],
        )
    except (JoseError, ValueError):
        raise SignatureMismatch("the JWT's signature does not verify") from None
    claims = verified.claims
    _check_lifetime(claims, now)
    expected = {
        "request-method": method.upper(),
        "request-host": host,
        "request-resource-path": path_and_query,
        "iss": merchant.merchant_id,
        "v-c-jwt-version": JWT_VERSION,
    }
    for name, value in expected.items():
        if claims.get(name) != value:
            raise SignatureMismatch(f"the JWT's {name} does not match the request")
    if method.upper() in METHODS_WITH_BODY and not (
        claims.get("digestAlgorithm") == "SHA-256"
        and hmac.compare_digest(str(claims.get("digest", "")), body_digest(body))
    ):
        raise SignatureMismatch("the JWT's digest does not match the body")
    if method.upper() not in METHODS_WITH_BODY and body:
        raise SignatureMismatch(f"a {method.upper()} carries no body (its JWT has no digest)")
    organization_id = claims.get("v-c-merchant-id")
    if not isinstance(organization_id, str) or not merchant.may_act_for(organization_id):
        raise SignatureMismatch("v-c-merchant-id does not belong to the key")
    token_id = claims.get("jti")
    if not isinstance(token_id, str) or not _is_uuid(token_id):
        raise SignatureMismatch("the JWT's jti must be a UUID")
    return VerifiedBearer(merchant, organization_id, token_id, int(claims["exp"]))


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _unverified_kid(token: str) -> str:
    try:
        header = jws.extract_compact(token.encode()).protected  # the signature is checked next
    except (JoseError, ValueError):
        raise SignatureMismatch("the Authorization header holds no readable JWT") from None
    kid = header.get("kid")
    if header.get("alg") != ALGORITHM or header.get("typ") != "JWT" or not isinstance(kid, str):
        raise SignatureMismatch(f"the JWT's header must name alg {ALGORITHM}, typ JWT and a kid")
    return kid


def _check_lifetime(claims: Mapping[str, Any], now: float) -> None:
    issued_at, expires = claims.get("iat"), claims.get("exp")
    if not isinstance(issued_at, int) or not isinstance(expires, int):
        raise SignatureMismatch("the JWT must carry iat and exp as seconds")
    if not 0 < expires - issued_at <= LIFETIME_SECONDS:
        raise SignatureMismatch(f"the JWT must expire within {LIFETIME_SECONDS} s of its iat")
    if issued_at > now + CLOCK_SKEW_SECONDS:
        raise SignatureMismatch("the JWT is issued in the future")
    if expires < now:
        raise SignatureMismatch("the JWT has expired")
