"""Merchant accounts: who the ledger calls Cybersource as, and whose webhooks it accepts.

One merchant comes from the environment (``LEDGER_CYBERSOURCE_*`` and ``LEDGER_WEBHOOK_KEYS``,
as a single deployment has always been configured). Several come from a TOML file named by
``LEDGER_MERCHANTS_FILE`` (docs/merchants.md), one ``[[merchants]]`` table each::

    [[merchants]]
    id = "acme_corp"                       # the merchant id Cybersource issued
    organizations = ["acme_corp", "acme_eu"]  # a portfolio key's organizations (default: id)
    key_id = "6d5ac1c4-…"                  # HTTP Signature: key id and shared secret
    secret_key_file = "acme/secret_key"    # any secret: inline, or *_file (a mounted secret)
    webhook_keys_file = "acme/webhook_keys"  # keyId:base64key, comma-separated
    max_requests_per_second = 5

A secret may sit in the file (which is then itself a secret) or, with the ``_file`` suffix, in
a file of its own, relative to the merchants file. Errors name the merchant and the field,
never a value. Plain values only: the keys themselves are loaded by service/configured_keys.py.
"""

from __future__ import annotations

import base64
import binascii
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from service.settings.values import IDENTIFIER_PATTERN, WebhookKeyring, is_identifier

# A merchants file is configuration, not data: anything larger is a mistake.
MERCHANTS_FILE_BYTES_MAX = 1_048_576
MERCHANTS_MAX = 1000
# Fields whose value may instead be read from the file ``<field>_file`` names.
SECRET_FIELDS = ("secret_key", "key_password", "webhook_keys")
# Where the one merchant of a single deployment is configured: LEDGER_CYBERSOURCE_<FIELD>.
ENVIRONMENT_SOURCE = "LEDGER_CYBERSOURCE_"


# The single merchant's settings (LEDGER_CYBERSOURCE_*), which a merchants file replaces.
SINGLE_MERCHANT_SETTINGS = (
    "merchant_id", "auth", "key_id", "secret_key", "key_file", "certificate_file",
    "key_password", "organization_ids", "max_requests_per_second",
)  # fmt: skip


def settings_to_unset(settings: Any) -> str:
    """The single merchant's settings given (other than their defaults) beside a merchants
    file, which would otherwise be ignored, by name; empty when none is."""
    fields = type(settings).model_fields
    named = [
        f"LEDGER_CYBERSOURCE_{name.upper()}"
        for name in SINGLE_MERCHANT_SETTINGS
        if getattr(settings, f"cybersource_{name}") != fields[f"cybersource_{name}"].default
    ]
    return ", ".join(named + ["LEDGER_WEBHOOK_KEYS"] * bool(settings.webhook_keys.keys))


class MerchantsFileError(ValueError):
    """The merchants file cannot be used; the message names what, never a secret."""


@dataclass(frozen=True)
class MerchantAccount:
    """One merchant: its REST credentials (none: the reconciler does not call for it), the
    webhook keys that sign its notifications, the organizations it may act for.

    ``source`` says where it was configured, for messages: a setting prefix or the file."""

    merchant_id: str
    organization_ids: tuple[str, ...] = ()
    auth: Literal["http_signature", "jwt"] = "http_signature"
    key_id: str | None = None
    secret_key: SecretStr | None = field(default=None, repr=False)
    key_file: str | None = None
    certificate_file: str | None = None
    key_password: SecretStr | None = field(default=None, repr=False)
    webhook_keys: WebhookKeyring = field(default_factory=WebhookKeyring)
    max_requests_per_second: float = 5.0
    source: str = ENVIRONMENT_SOURCE

    @property
    def organizations(self) -> tuple[str, ...]:
        """The organizations it acts for: the configured ones, else the merchant itself."""
        return self.organization_ids or (self.merchant_id,)

    @property
    def calls_cybersource(self) -> bool:
        if self.auth == "jwt":
            return self.key_file is not None
        return self.key_id is not None and self.secret_key is not None

    def setting(self, name: str) -> str:
        """Where ``name`` (a field) is set, for a message: LEDGER_CYBERSOURCE_KEY_FILE, or the
        merchants file's merchant and field."""
        if self.source == ENVIRONMENT_SOURCE:
            return f"{self.source}{name.upper()}"
        return f"{self.source}: merchant {self.merchant_id!r}: {name}"


def environment_account(
    merchant_id: str | None,
    organization_ids: tuple[str, ...],
    auth: Literal["http_signature", "jwt"],
    key_id: str | None,
    secret_key: SecretStr | None,
    key_file: str | None,
    certificate_file: str | None,
    key_password: SecretStr | None,
    max_requests_per_second: float,
) -> tuple[MerchantAccount, ...]:
    """The merchant the ``LEDGER_CYBERSOURCE_*`` settings configure, if they name one. Its
    webhook keys stay LEDGER_WEBHOOK_KEYS, accepted for any organization, as they always were."""
    if not merchant_id:
        return ()
    account = MerchantAccount(
        merchant_id, organization_ids, auth, key_id, secret_key, key_file, certificate_file,
        key_password, max_requests_per_second=max_requests_per_second,
    )  # fmt: skip
    return (account,)


class _MerchantEntry(BaseModel):
    """One ``[[merchants]]`` table, as written (secrets already read from their files)."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    id: str = Field(pattern=IDENTIFIER_PATTERN)
    # Absent: the merchant's own id; given, at least one (an empty list would mean the same
    # as absent while reading as "none").
    organizations: tuple[str, ...] = Field((), min_length=1)
    auth: Literal["http_signature", "jwt"] = "http_signature"
    key_id: str | None = Field(None, min_length=1, max_length=200)
    secret_key: SecretStr | None = None
    key_file: str | None = None
    certificate_file: str | None = None
    key_password: SecretStr | None = None
    webhook_keys: str = ""
    max_requests_per_second: float = Field(5.0, gt=0, le=1000)

    @field_validator("organizations")
    @classmethod
    def _identifiers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for organization in value:
            if not is_identifier(organization):
                raise ValueError(f"organization id {organization[:20]!r} is not an identifier")
        if len(set(value)) != len(value):
            raise ValueError("an organization is listed twice")
        return value

    @field_validator("secret_key")
    @classmethod
    def _base64_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                base64.b64decode(value.get_secret_value(), validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("is not valid base64") from None
        return value

    @field_validator("webhook_keys")
    @classmethod
    def _keyring(cls, value: str) -> str:
        WebhookKeyring.parse(value)  # the message names the entry, never the key
        return value


class _MerchantsDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    # Counted once every table reads (a bound on the tuple would count a table with a mistake
    # as missing, and add "at least 1 item" to the mistake's message).
    merchants: tuple[_MerchantEntry, ...]

    @field_validator("merchants")
    @classmethod
    def _counted(cls, value: tuple[_MerchantEntry, ...]) -> tuple[_MerchantEntry, ...]:
        if not 1 <= len(value) <= MERCHANTS_MAX:
            raise ValueError(f"needs 1 to {MERCHANTS_MAX} [[merchants]] tables, not {len(value)}")
        return value


def read_merchants_file(
    path: Path, setting: str = "LEDGER_MERCHANTS_FILE"
) -> tuple[MerchantAccount, ...]:
    """The merchants ``path`` configures, checked each on its own and against each other;
    MerchantsFileError naming the file, the merchant and the field otherwise."""
    where = f"{setting}: {path}"
    try:
        if path.stat().st_size > MERCHANTS_FILE_BYTES_MAX:
            raise MerchantsFileError(f"{where}: larger than {MERCHANTS_FILE_BYTES_MAX} bytes")
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise MerchantsFileError(f"{where}: cannot be read ({error.strerror})") from None
    except UnicodeDecodeError:
        raise MerchantsFileError(f"{where}: is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as error:
        # The parser's message names a line and column, never the text there.
        raise MerchantsFileError(f"{where}: is not TOML ({error})") from None
    entries = document.get("merchants")
    if isinstance(entries, list):
        document["merchants"] = [
            _with_secret_files(entry, path.parent, f"{where}: merchants[{position}]")
            for position, entry in enumerate(entries)
        ]
    try:
        parsed = _MerchantsDocument.model_validate(document)
    except ValidationError as error:
        raise MerchantsFileError(f"{where}: {_problems(error)}") from None
    accounts = tuple(_account(entry, setting) for entry in parsed.merchants)
    check_accounts_apart(accounts, where)
    return accounts


def check_accounts_apart(accounts: tuple[MerchantAccount, ...], where: str) -> None:
    """Each merchant once, each organization with one merchant (one sweeps it), each webhook
    key id with one merchant (the key id picks the merchant a notification is checked for)."""
    merchants: set[str] = set()
    organizations: dict[str, str] = {}
    key_ids: dict[str, str] = {}
    for account in accounts:
        if account.merchant_id in merchants:
            raise MerchantsFileError(f"{where}: merchant {account.merchant_id!r} appears twice")
        merchants.add(account.merchant_id)
        for organization in account.organizations:
            other = organizations.setdefault(organization, account.merchant_id)
            if other != account.merchant_id:
                raise MerchantsFileError(
                    f"{where}: organization {organization!r} is listed by merchants {other!r}"
                    f" and {account.merchant_id!r}: one merchant acts for each"
                )
        for key_id in account.webhook_keys.keys:
            other = key_ids.setdefault(key_id, account.merchant_id)
            if other != account.merchant_id:
                raise MerchantsFileError(
                    f"{where}: webhook keyId {key_id!r} is given to merchants {other!r} and"
                    f" {account.merchant_id!r}"
                )


def _account(entry: _MerchantEntry, setting: str) -> MerchantAccount:
    if entry.auth == "jwt":
        if entry.key_file is None or entry.key_id or entry.secret_key:
            raise MerchantsFileError(
                f"{setting}: merchant {entry.id!r}: auth jwt needs key_file (a .p12 file or a"
                " PEM key) and no key_id or secret_key"
            )
    elif entry.key_file or entry.certificate_file:
        raise MerchantsFileError(
            f"{setting}: merchant {entry.id!r}: key_file and certificate_file are for auth jwt"
        )
    elif (entry.key_id is None) != (entry.secret_key is None):
        raise MerchantsFileError(
            f"{setting}: merchant {entry.id!r}: key_id and secret_key go together"
        )
    return MerchantAccount(
        merchant_id=entry.id,
        organization_ids=entry.organizations,
        auth=entry.auth,
        key_id=entry.key_id,
        secret_key=entry.secret_key,
        key_file=entry.key_file,
        certificate_file=entry.certificate_file,
        key_password=entry.key_password,
        webhook_keys=WebhookKeyring.parse(entry.webhook_keys),
        max_requests_per_second=entry.max_requests_per_second,
        source=setting,
    )


def _with_secret_files(entry: Any, directory: Path, where: str) -> Any:
    """``entry`` with each ``<secret>_file`` replaced by the secret that file holds, and
    ``key_file``/``certificate_file`` made relative to the merchants file's directory."""
    if not isinstance(entry, dict):
        return entry
    resolved = dict(entry)
    for name in SECRET_FIELDS:
        path = resolved.pop(f"{name}_file", None)
        if path is None:
            continue
        if name in resolved:
            raise MerchantsFileError(f"{where}: {name} and {name}_file exclude each other")
        if not isinstance(path, str):
            raise MerchantsFileError(f"{where}: {name}_file must be a path")
        try:
            # A mounted secret's file often ends in a newline that is not part of the secret.
            resolved[name] = (directory / path).read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
            raise MerchantsFileError(
                f"{where}: {name}_file {path}: cannot be read ({reason})"
            ) from None
    for name in ("key_file", "certificate_file"):
        if isinstance(resolved.get(name), str):
            resolved[name] = str(directory / resolved[name])
    return resolved


def _problems(error: ValidationError) -> str:
    problems = []
    for detail in error.errors():
        location = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in detail["loc"]
        ).lstrip(".")
        message = detail["msg"].removeprefix("Value error, ")
        problems.append(f"{location}: {message}" if location else message)
    return "; ".join(problems)
