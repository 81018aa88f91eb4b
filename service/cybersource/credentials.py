"""What authenticates a call to Cybersource's REST API: a shared secret (HTTP Signature,
``http_signature.MerchantCredentials``) or a certificate (JWT,
``jwt_authentication.CertificateCredentials``). The REST client takes either."""

from __future__ import annotations

from typing import Protocol


class RequestCredentials(Protocol):
    @property
    def merchant_id(self) -> str:
        """The key's owner: a merchant, or the portfolio that holds a meta key."""

    @property
    def organization_ids(self) -> tuple[str, ...]:
        """The organizations the key may act for besides its owner."""

    def may_act_for(self, organization_id: str) -> bool: ...

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
        """The headers that authenticate one request for ``organization_id``, sent at
        ``now`` (epoch seconds)."""
