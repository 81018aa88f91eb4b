"""The cryptography of personal data, and nothing else: no database, no I/O.

A 32-byte master key (LEDGER_PERSONAL_DATA_KEY) never touches data itself. Two keys are
derived from it with HKDF-SHA256: one wraps each payer's data key (AES-256-GCM), the other
names payers (HMAC-SHA256 of the normalised email, or name), so that neither the key table
nor an erasure's record holds a clear email. A customer (name and email) is sealed with
AES-256-GCM under its payer's data key, a random 96-bit nonce per sealing, and the payer's
name as associated data: a sealed customer cannot be passed off as another payer's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32
NONCE_BYTES = 12
MASTER_KEY_ID_LENGTH = 16
_WRAPPING_PURPOSE = b"invoice-ledger personal data: wrapping data keys"
_NAMING_PURPOSE = b"invoice-ledger personal data: naming payers"
_FINGERPRINT_PURPOSE = b"invoice-ledger personal data: master key fingerprint"
_DATA_KEY_CONTEXT = b"invoice-ledger data key:"
_DATA_KEY_ID_PURPOSE = b"invoice-ledger personal data: data key id"
DATA_KEY_ID_LENGTH = 16
_CUSTOMER_CONTEXT = b"invoice-ledger customer:"


class UnreadableSeal(Exception):
    """A sealed value does not open with the key given: another key, or damaged."""


def _derived(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=purpose).derive(master)


def normalised_email(email: str) -> str:
    return email.strip().lower()


def normalised_name(name: str) -> str:
    return " ".join(name.split()).lower()


def payer_identity(name: str | None, email: str | None) -> str | None:
    """What names a payer before hashing: the normalised email, else the normalised name;
    None when the fact names neither."""
    if email is not None and normalised_email(email):
        return "email:" + normalised_email(email)
    if name is not None and normalised_name(name):
        return "name:" + normalised_name(name)
    return None


class MasterKey:
    """The configured master key and what is derived from it. Its repr shows the
    fingerprint only."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"the master key must be {KEY_BYTES} bytes")
        self._wrapping = AESGCM(_derived(key, _WRAPPING_PURPOSE))
        self._naming = _derived(key, _NAMING_PURPOSE)
        fingerprint = _derived(key, _FINGERPRINT_PURPOSE)
        self.key_id = fingerprint.hex()[:MASTER_KEY_ID_LENGTH]

    def __repr__(self) -> str:
        return f"MasterKey(key_id={self.key_id})"

    def payer(self, name: str | None, email: str | None) -> str | None:
        """The payer's keyed hash (64 hex digits), or None for a fact that names nobody."""
        identity = payer_identity(name, email)
        if identity is None:
            return None
        return hmac.new(self._naming, identity.encode(), hashlib.sha256).hexdigest()

    def customer_digest(self, customer: Mapping[str, Any]) -> str:
        """A keyed hash of a clear customer: what a fact's content digest covers in place of
        its sealed customer, the same however often the fact is sealed."""
        canonical = json.dumps(customer, sort_keys=True, separators=(",", ":"))
        return hmac.new(self._naming, canonical.encode(), hashlib.sha256).hexdigest()

    def new_data_key(self, payer: str) -> tuple[bytes, bytes]:
        """A fresh data key and its wrapped form (nonce, then ciphertext and tag)."""
        data_key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
        nonce = os.urandom(NONCE_BYTES)
        wrapped = nonce + self._wrapping.encrypt(
            nonce, data_key, _DATA_KEY_CONTEXT + payer.encode()
        )
        return data_key, wrapped

    def unwrap(self, payer: str, wrapped: bytes) -> bytes:
        nonce, sealed = wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:]
        try:
            return self._wrapping.decrypt(nonce, sealed, _DATA_KEY_CONTEXT + payer.encode())
        except InvalidTag:
            raise UnreadableSeal(f"the data key of payer {payer[:12]}… does not unwrap") from None


def data_key_id(data_key: bytes) -> str:
    """Names one data key among a payer's successive ones (a payer erased, then named again
    by a new fact, has a new key): not the key, and the same once it is rewrapped."""
    return hmac.new(data_key, _DATA_KEY_ID_PURPOSE, hashlib.sha256).hexdigest()[:DATA_KEY_ID_LENGTH]


@dataclass(frozen=True, slots=True)
class SealedCustomer:
    """How a fact stores a customer once sealed: ``{"payer": …, "key": …, "sealed": …}``."""

    payer: str
    key_id: str  # the data key it was sealed under (data_key_id)
    sealed: str  # base64 of nonce, then ciphertext and tag

    @staticmethod
    def found_in(customer: Any) -> SealedCustomer | None:
        if isinstance(customer, Mapping) and isinstance(customer.get("sealed"), str):
            return SealedCustomer(
                str(customer.get("payer") or ""), str(customer.get("key") or ""), customer["sealed"]
            )
        return None

    def stored(self) -> dict[str, str]:
        return {"payer": self.payer, "key": self.key_id, "sealed": self.sealed}

    def sealed_under(self, data_key: bytes) -> bool:
        return hmac.compare_digest(self.key_id, data_key_id(data_key))


def seal_customer(payer: str, data_key: bytes, customer: Mapping[str, Any]) -> SealedCustomer:
    plain = json.dumps(dict(customer), separators=(",", ":")).encode()
    nonce = os.urandom(NONCE_BYTES)
    sealed = nonce + AESGCM(data_key).encrypt(nonce, plain, _CUSTOMER_CONTEXT + payer.encode())
    return SealedCustomer(payer, data_key_id(data_key), base64.b64encode(sealed).decode())


def open_customer(sealed: SealedCustomer, data_key: bytes) -> dict[str, Any]:
    raw = base64.b64decode(sealed.sealed)
    try:
        plain = AESGCM(data_key).decrypt(
            raw[:NONCE_BYTES], raw[NONCE_BYTES:], _CUSTOMER_CONTEXT + sealed.payer.encode()
        )
    except InvalidTag:
        raise UnreadableSeal(f"a customer of payer {sealed.payer[:12]}… does not open") from None
    opened = json.loads(plain)
    return {"name": opened.get("name"), "email": opened.get("email")}
