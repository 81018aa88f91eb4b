"""The values settings are made of, each parsed and checked on its own: database URLs, the
webhook keyring, API tokens and the personal-data master key. Plain values; no module of the
service imported."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import SecretStr
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

# How long a command waits for SQLite's write lock when the URL's ``timeout`` does not say
# (``?timeout=SECONDS``, SQLAlchemy's own parameter for sqlite3's timeout).
SQLITE_LOCK_WAIT_SECONDS = 30.0


class UnsupportedDatabaseUrl(ValueError):
    pass


PERSONAL_DATA_KEY_BYTES = 32


def personal_data_master_key(value: SecretStr) -> bytes:
    """The master key's bytes: base64 of exactly 32 bytes, or ValueError."""
    try:
        key = base64.b64decode(value.get_secret_value().strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be base64 (e.g. from `openssl rand -base64 32`)") from None
    if len(key) != PERSONAL_DATA_KEY_BYTES:
        raise ValueError(f"must be {PERSONAL_DATA_KEY_BYTES} bytes once decoded from base64")
    return key


def resolve_database_url(url: str) -> URL:
    """Accept ``sqlite:///path.db`` and ``postgresql://…`` as written; pick the async driver."""
    try:
        parsed = make_url(url.strip())
    except ArgumentError as error:
        raise UnsupportedDatabaseUrl(f"{_redacted(url)!r} is not a database URL") from error
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        if not parsed.database:
            raise UnsupportedDatabaseUrl("a PostgreSQL URL must name a database")
        return parsed.set(drivername="postgresql+asyncpg")
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise UnsupportedDatabaseUrl(
                "an SQLite URL must name a file (sqlite:///relative.db or sqlite:////absolute.db);"
                " an in-memory database would lose every acknowledged notification"
            )
        sqlite_lock_wait_seconds(parsed)  # an unreadable timeout is refused with the URL
        return parsed.set(drivername="sqlite+aiosqlite")
    raise UnsupportedDatabaseUrl(
        f"unsupported database {backend!r}: use sqlite:///path.db or postgresql://user@host/db"
    )


def _redacted(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable>"


def sqlite_lock_wait_seconds(url: URL, default: float = SQLITE_LOCK_WAIT_SECONDS) -> float:
    """The bound on a wait for SQLite's lock: the URL's ``timeout`` (seconds), else
    ``default``."""
    given = url.query.get("timeout")
    try:
        seconds = float(given if isinstance(given, str) else default)
    except ValueError:
        raise UnsupportedDatabaseUrl(
            "the SQLite URL's timeout must be a number of seconds"
        ) from None
    if not 0 < seconds <= 3600:
        raise UnsupportedDatabaseUrl("the SQLite URL's timeout must be 0 to 3600 seconds")
    return seconds


IDENTIFIER_PATTERN = r"^[A-Za-z0-9_.\-]{1,100}$"


def is_identifier(value: str) -> bool:
    """An organization or merchant id as Cybersource writes them."""
    return re.fullmatch(IDENTIFIER_PATTERN, value) is not None


def organization_ids(value: str) -> tuple[str, ...]:
    """Comma-separated organization ids; ValueError naming the first that is not one."""
    organizations = tuple(part.strip() for part in value.split(",") if part.strip())
    for organization in organizations:
        if not is_identifier(organization):
            raise ValueError(f"organization id {organization[:20]!r} is not an identifier")
    return organizations


def trusted_proxies(value: str) -> tuple[str, ...]:
    """Comma-separated addresses or networks; ValueError naming the first that is not one."""
    entries = tuple(part.strip() for part in value.split(",") if part.strip())
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(f"{entry[:50]!r} is not an IP address or network") from None
    return entries


def _not_a_key_id(key_id: str) -> bool:
    return ":" in key_id or any(character.isspace() for character in key_id)


@dataclass(frozen=True)
class WebhookKeyring:
    """Signing keys by keyId. Its repr lists key ids only, so settings can be logged safely."""

    keys: Mapping[str, bytes] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"WebhookKeyring(key_ids={sorted(self.keys)})"

    @classmethod
    def parse(cls, value: str) -> WebhookKeyring:
        keys: dict[str, bytes] = {}
        for position, pair in enumerate(filter(None, (p.strip() for p in value.split(","))), 1):
            key_id, separator, encoded = pair.rpartition(":")
            key_id = key_id.strip()
            # A keyId holds no colon or white space: entries on lines of their own would put
            # the first one's key in a keyId, which start-up logs. The message names no key.
            if not separator or not key_id or not encoded.strip() or _not_a_key_id(key_id):
                raise ValueError(f"entry {position} is not keyId:base64key")
            try:
                key = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"the key for keyId {key_id!r} is not valid base64") from None
            if len(key) < 16:
                raise ValueError(f"the key for keyId {key_id!r} is shorter than 16 bytes")
            if key_id in keys:
                raise ValueError(f"keyId {key_id!r} appears twice")
            keys[key_id] = key
        return cls(keys)


@dataclass(frozen=True)
class ApiTokens:
    """Bearer tokens for the query API: ``TOKEN`` reads, ``operator:TOKEN`` also reads
    delivery bodies and replays; ``read@acme:TOKEN`` or ``read@acme+beta:TOKEN`` sees only
    those merchants' invoices. Its repr counts them and shows none."""

    tokens: tuple[str, ...] = ()  # read tokens
    operator_tokens: tuple[str, ...] = ()
    # The merchants a token is limited to; a token not here sees every merchant.
    merchants_by_token: Mapping[str, frozenset[str]] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        return (
            f"ApiTokens(read={len(self.tokens)}, operator={len(self.operator_tokens)},"
            f" limited={len(self.merchants_by_token)})"
        )

    @property
    def merchants_named(self) -> frozenset[str]:
        return frozenset().union(*self.merchants_by_token.values())

    @classmethod
    def parse(cls, value: str) -> ApiTokens:
        read: list[str] = []
        operator: list[str] = []
        limits: dict[str, frozenset[str]] = {}
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        for position, entry in enumerate(entries, 1):
            prefix, separator, token = entry.partition(":")
            if not separator:
                prefix, token = "read", entry
            scope, limited, merchants = prefix.strip().partition("@")
            # The message names the entry's position, never its text: it may be a token.
            if scope not in ("read", "operator"):
                raise ValueError(
                    f"entry {position} is neither TOKEN, operator:TOKEN nor SCOPE@MERCHANT:TOKEN"
                )
            token = token.strip()
            if len(token) < 16:
                raise ValueError(f"entry {position}: every token must be at least 16 characters")
            if token in read or token in operator:
                raise ValueError(f"entry {position} repeats a token")
            if limited:
                named = frozenset(m.strip() for m in merchants.split("+"))
                if not all(is_identifier(merchant) for merchant in named):
                    raise ValueError(f"entry {position}: after @, merchant ids joined by +")
                limits[token] = named
            (operator if scope == "operator" else read).append(token)
        return cls(tuple(read), tuple(operator), limits)


# A Standard Webhooks secret: "whsec_" and the base64 of the key (24 to 64 bytes).
STANDARD_WEBHOOKS_SECRET_PREFIX = "whsec_"
STANDARD_WEBHOOKS_KEY_BYTES = range(24, 65)


def standard_webhooks_key(secret: str) -> bytes:
    """The signing key of a Standard Webhooks secret; ValueError names the form expected,
    never the value."""
    expected = f"must be {STANDARD_WEBHOOKS_SECRET_PREFIX} and the base64 of 24 to 64 bytes"
    if not secret.startswith(STANDARD_WEBHOOKS_SECRET_PREFIX):
        raise ValueError(expected)
    try:
        key = base64.b64decode(secret.removeprefix(STANDARD_WEBHOOKS_SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(expected) from None
    if len(key) not in STANDARD_WEBHOOKS_KEY_BYTES:
        raise ValueError(expected)
    return key
