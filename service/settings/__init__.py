"""Typed settings from the environment, validated once at start-up.

An invalid value stops the service with a message that names the variable; secret values
are never echoed back. Plain values only (``values.py`` parses each), and no module of the
service outside this package imported: what a component makes of them (credentials, HTTP
limits, an engine) is built in service/bootstrap.py.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import URL

from service.settings.merchants import (
    MerchantAccount,
    MerchantsFileError,
    environment_account,
    read_merchants_file,
    settings_to_unset,
)
from service.settings.values import (
    PERSONAL_DATA_KEY_BYTES,
    SQLITE_LOCK_WAIT_SECONDS,
    ApiTokens,
    UnsupportedDatabaseUrl,
    WebhookKeyring,
    organization_ids,
    personal_data_master_key,
    resolve_database_url,
    sqlite_lock_wait_seconds,
    standard_webhooks_key,
    trusted_proxies,
)

# The package's public names: the settings, and the values they are made of.
__all__ = [
    "DEFAULT_DATABASE_URL",
    "ENVIRONMENT_PREFIX",
    "PERSONAL_DATA_KEY_BYTES",
    "SQLITE_LOCK_WAIT_SECONDS",
    "ApiTokens",
    "ConfigurationError",
    "MerchantAccount",
    "Settings",
    "UnsupportedDatabaseUrl",
    "WebhookKeyring",
    "load_settings",
    "personal_data_master_key",
    "resolve_database_url",
    "sqlite_lock_wait_seconds",
    "standard_webhooks_key",
]

ENVIRONMENT_PREFIX = "LEDGER_"
DEFAULT_DATABASE_URL = "sqlite:///var/ledger.db"


class ConfigurationError(Exception):
    pass


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENVIRONMENT_PREFIX, frozen=True, extra="ignore", hide_input_in_errors=True
    )

    database_url: str = Field(DEFAULT_DATABASE_URL, repr=False)
    # Refuse to start when a LEDGER_* variable names no setting (a misspelling).
    strict_settings: bool = False
    # One log line per HTTP request (route template, status, duration, request id).
    access_log: bool = True
    database_pool_size: int = Field(20, ge=1, le=200)
    # Group commit (service/store/events/group_commit.py): deliveries appended in one transaction,
    # at most this many, gathered for at most this long after the first.
    append_group_size_max: int = Field(64, ge=1, le=1000)
    append_group_wait_seconds: float = Field(0.002, ge=0, le=0.1)
    webhook_keys: Annotated[WebhookKeyring, NoDecode] = WebhookKeyring()
    webhook_tolerance_seconds: int = Field(3600, ge=1, le=7 * 24 * 3600)
    # What a webhook signature covers: auto, raw (the body) or payload (JSON.stringify of it).
    webhook_signed_content: Literal["auto", "raw", "payload"] = "auto"
    # How far ahead of this clock a signature's t may be (clock skew), apart from its age.
    webhook_future_skew_seconds: int = Field(300, ge=0, le=3600)
    # In auto mode the payload form costs a parse and a re-serialisation: only bodies up to
    # this size get it (invoicing notifications are a few kilobytes).
    webhook_payload_form_max_bytes: int = Field(262_144, ge=1024, le=64 * 1_048_576)
    max_body_bytes: int = Field(1_048_576, ge=1024, le=64 * 1_048_576)
    # Invoices (payload items) one delivery may carry; beyond it 422 and a dead letter.
    webhook_items_max: int = Field(1000, ge=1, le=100_000)
    # What one client may hold of the HTTP server (see service/http_server.py).
    http_implementation: Literal["h11", "httptools"] = "httptools"
    http_max_header_bytes: int = Field(16_384, ge=1024, le=1_048_576)
    http_max_header_count: int = Field(100, ge=10, le=10_000)
    http_header_timeout_seconds: float = Field(10.0, gt=0, le=600)
    http_body_timeout_seconds: float = Field(30.0, gt=0, le=600)
    http_keep_alive_timeout_seconds: int = Field(5, ge=1, le=600)
    # With a port here, `serve` serves /v1, /console, /metrics and /openapi.json on it, and
    # only the webhook and the probes on its --port.
    internal_port: int | None = Field(None, ge=1, le=65535)
    http_max_connections: int = Field(200, ge=1, le=100_000)
    # One client's share of those: its open connections and its requests in flight.
    http_max_connections_per_client: int = Field(20, ge=1, le=100_000)
    # Proxies whose X-Forwarded-For names the client (addresses or CIDR blocks).
    http_trusted_proxies: Annotated[tuple[str, ...], NoDecode] = ("127.0.0.1", "::1")
    log_level: str = "INFO"
    projector_enabled: bool = True
    # Woken by new events, the serving projector begins its next batch no sooner than this
    # after its last one (a backlog is projected without waiting): a trickle of events then
    # makes fewer, larger batches. Well below the projection lag target of 1 s.
    projector_batch_interval_seconds: float = Field(0.1, ge=0, le=0.5)
    cybersource_base_url: str = Field("https://apitest.cybersource.com", pattern=r"^https?://")
    cybersource_merchant_id: str | None = None
    cybersource_key_id: str | None = None
    cybersource_secret_key: SecretStr | None = None
    # How calls to Cybersource are authenticated: a shared secret (HTTP Signature, with the key
    # id and secret above) or a certificate (a JWT signed with the key in the key file).
    cybersource_auth: Literal["http_signature", "jwt"] = "http_signature"
    # For jwt: a PKCS#12 file (.p12/.pfx, as the Business Center issues it) or a PEM private
    # key; a PEM key's certificate is in the same file or in the certificate file.
    cybersource_key_file: str | None = None
    cybersource_certificate_file: str | None = None
    cybersource_key_password: SecretStr | None = None
    # A portfolio's key acts for these organizations (comma-separated); empty: only for the
    # merchant id itself.
    cybersource_organization_ids: Annotated[tuple[str, ...], NoDecode] = ()
    cybersource_max_requests_per_second: float = Field(5.0, gt=0, le=1000)
    # Several merchant accounts (docs/merchants.md): a TOML file of merchants, each with its
    # credentials, webhook keys, organizations and rate limit, in place of the one merchant
    # the LEDGER_CYBERSOURCE_* settings and LEDGER_WEBHOOK_KEYS configure.
    merchants_file: str | None = None
    _merchant_accounts: tuple[MerchantAccount, ...] = PrivateAttr(default=())
    reconcile_interval_seconds: int = Field(900, ge=10, le=7 * 24 * 3600)
    # The serving reconciler fetches every invoice this often (the incremental sweeps between
    # fetch only those whose summaries give reason to).
    reconciler_full_sweep_interval_seconds: int = Field(7 * 24 * 3600, ge=60, le=366 * 24 * 3600)
    api_tokens: Annotated[ApiTokens, NoDecode] = ApiTokens()
    # Lets `serve` listen beyond loopback with /v1 open to every client (no tokens).
    api_allow_anonymous: bool = False
    # A console sign-in lasts this long (then sign in again); sign-out ends it sooner.
    console_session_seconds: int = Field(8 * 3600, ge=300, le=7 * 24 * 3600)
    # A client address presenting this many wrong tokens (/v1, console, sign-in) within the
    # window, counted from its first, is answered 429 until the window has passed.
    auth_failures_max: int = Field(10, ge=1, le=10_000)
    auth_failure_window_seconds: int = Field(300, ge=1, le=24 * 3600)
    # From SIGTERM to exit: workers stop (cancelling a round in progress and releasing their
    # lease), in-flight requests drain, then the process ends.
    shutdown_grace_seconds: float = Field(10.0, ge=1, le=600)
    # When the webhook signing key expires (Cybersource keys do): exported for an alert.
    webhook_key_expires_at: datetime | None = None
    # Message-level encryption (docs/encrypted-notifications.md): key files or directories,
    # their password (or its file; bootstrap loads them), what the signature covers.
    notification_decryption_keys: Annotated[tuple[str, ...], NoDecode] = ()
    notification_decryption_key_password: SecretStr | None = None
    notification_decryption_key_password_file: str | None = None
    notification_signature_covers: Literal["auto", "encrypted", "decrypted"] = "auto"
    # Refused deliveries (401/408/413) recorded per second per process; the rest only counted.
    refusals_recorded_per_second: float = Field(10.0, ge=0, le=10_000)
    # Inbox retention, in days, applied by the serving process; None: kept for ever.
    retention_refused_days: int | None = Field(30, ge=1, le=36_500)
    retention_accepted_days: int | None = Field(None, ge=1, le=36_500)
    retention_interval_seconds: int = Field(3600, ge=60, le=7 * 24 * 3600)
    # How often the projection-lag gauges are sampled (the inbox's every 12 samples).
    metrics_sample_seconds: float = Field(5.0, ge=0.1, le=300)
    # The master key of personal data (base64 of 32 bytes): payers' names and emails in the
    # stored facts are sealed under per-payer data keys it wraps, and `erase` can forget a
    # payer. Unset: they are stored in clear and `erase` refuses (docs/personal-data.md).
    personal_data_key: SecretStr | None = Field(None, repr=False)
    # The built-in notifier (docs/operations.md): a digest of the deliveries that began waiting
    # for an operator, posted to this URL signed as Standard Webhooks, at most once per
    # interval. Unset: no notifier (Prometheus and Alertmanager may do this instead).
    notifier_url: str | None = Field(None, pattern=r"^https?://[^\s]+$", max_length=2000)
    notifier_secret: SecretStr | None = Field(None, repr=False)
    notifier_interval_seconds: float = Field(900.0, ge=0.1, le=86_400)
    # The console's address as people open it, for the links in digests.
    console_public_url: str | None = Field(None, pattern=r"^https?://[^\s]+$", max_length=2000)

    @field_validator("notifier_secret")
    @classmethod
    def _signing_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            standard_webhooks_key(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _notifier_signs(self) -> Settings:
        if self.notifier_url is not None and self.notifier_secret is None:
            raise ValueError(
                "LEDGER_NOTIFIER_URL needs LEDGER_NOTIFIER_SECRET (whsec_…): digests are always"
                " signed"
            )
        return self

    @field_validator("personal_data_key")
    @classmethod
    def _master_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            personal_data_master_key(value)  # the message names the form, never the value
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        try:
            resolve_database_url(value)
        except UnsupportedDatabaseUrl as error:
            raise ValueError(str(error)) from None
        return value

    @field_validator("webhook_key_expires_at", mode="before")
    @classmethod
    def _expiry_date(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        if isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value.strip())
            except ValueError:
                raise ValueError("must be an ISO date or date-time, e.g. 2027-03-31") from None
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return value

    @field_validator("retention_refused_days", "retention_accepted_days", mode="before")
    @classmethod
    def _days_or_off(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in {"", "off", "never"}:
            return None
        return value

    @field_validator("webhook_keys", mode="before")
    @classmethod
    def _parse_keys(cls, value: Any) -> Any:
        return WebhookKeyring.parse(value) if isinstance(value, str) else value

    @field_validator("api_tokens", mode="before")
    @classmethod
    def _parse_tokens(cls, value: Any) -> Any:
        return ApiTokens.parse(value) if isinstance(value, str) else value

    @field_validator("cybersource_organization_ids", mode="before")
    @classmethod
    def _parse_organizations(cls, value: Any) -> Any:
        return organization_ids(value) if isinstance(value, str) else value

    @field_validator("cybersource_key_file", "cybersource_certificate_file", mode="before")
    @classmethod
    def _path_or_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("notification_decryption_keys", mode="before")
    @classmethod
    def _parse_key_paths(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        return tuple(part.strip() for part in value.split(",") if part.strip())

    @field_validator("internal_port", mode="before")
    @classmethod
    def _port_or_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("http_trusted_proxies", mode="before")
    @classmethod
    def _parse_trusted_proxies(cls, value: Any) -> Any:
        return trusted_proxies(value) if isinstance(value, str) else value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return level

    @model_validator(mode="after")
    def _credentials_all_or_none(self) -> Settings:
        if self.merchants_file is not None:
            return self  # the merchants check names every single-merchant setting to unset
        if self.cybersource_auth == "jwt":
            return self._certificate_credentials_complete()
        if self.cybersource_key_file or self.cybersource_certificate_file:
            raise ValueError(
                "LEDGER_CYBERSOURCE_KEY_FILE and LEDGER_CYBERSOURCE_CERTIFICATE_FILE are for"
                " certificate authentication: set LEDGER_CYBERSOURCE_AUTH=jwt to use them"
            )
        given = [self.cybersource_merchant_id, self.cybersource_key_id, self.cybersource_secret_key]
        if any(given) and not all(given):
            raise ValueError(
                "LEDGER_CYBERSOURCE_MERCHANT_ID, LEDGER_CYBERSOURCE_KEY_ID and"
                " LEDGER_CYBERSOURCE_SECRET_KEY go together: set all three or none"
            )
        if self.cybersource_secret_key is not None:
            try:
                base64.b64decode(self.cybersource_secret_key.get_secret_value(), validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("LEDGER_CYBERSOURCE_SECRET_KEY is not valid base64") from None
        return self

    def _certificate_credentials_complete(self) -> Settings:
        if not self.cybersource_merchant_id or not self.cybersource_key_file:
            raise ValueError(
                "LEDGER_CYBERSOURCE_AUTH=jwt needs LEDGER_CYBERSOURCE_MERCHANT_ID and"
                " LEDGER_CYBERSOURCE_KEY_FILE (a .p12 file, or a PEM key)"
            )
        if self.cybersource_key_id or self.cybersource_secret_key:
            raise ValueError(
                "LEDGER_CYBERSOURCE_KEY_ID and LEDGER_CYBERSOURCE_SECRET_KEY are for"
                " LEDGER_CYBERSOURCE_AUTH=http_signature; with jwt the key file signs"
            )
        return self

    @model_validator(mode="after")
    def _full_sweeps_no_more_often_than_sweeps(self) -> Settings:
        if self.reconciler_full_sweep_interval_seconds < self.reconcile_interval_seconds:
            raise ValueError(
                "LEDGER_RECONCILER_FULL_SWEEP_INTERVAL_SECONDS must not be shorter than"
                " LEDGER_RECONCILE_INTERVAL_SECONDS"
            )
        return self

    @model_validator(mode="after")
    def _merchants(self) -> Settings:
        if self.merchants_file is None:
            self._merchant_accounts = environment_account(
                self.cybersource_merchant_id,
                self.cybersource_organization_ids,
                self.cybersource_auth,
                self.cybersource_key_id,
                self.cybersource_secret_key,
                self.cybersource_key_file,
                self.cybersource_certificate_file,
                self.cybersource_key_password,
                self.cybersource_max_requests_per_second,
            )
        else:
            unset = settings_to_unset(self)
            if unset:
                raise ValueError("LEDGER_MERCHANTS_FILE configures every merchant: unset " + unset)
            try:
                self._merchant_accounts = read_merchants_file(Path(self.merchants_file))
            except MerchantsFileError as error:
                raise ValueError(str(error)) from None
        unknown = self.api_tokens.merchants_named - {a.merchant_id for a in self._merchant_accounts}
        if unknown:
            raise ValueError(f"LEDGER_API_TOKENS: no merchant {min(unknown)[:40]!r} is configured")
        return self

    @property
    def merchant_accounts(self) -> tuple[MerchantAccount, ...]:
        """The merchants: the file's, else the one the environment configures (if any)."""
        return self._merchant_accounts

    @property
    def webhook_keys_by_id(self) -> dict[str, tuple[bytes, frozenset[str] | None]]:
        """Every webhook signing key by keyId, with the organizations its notifications may
        name: a merchant's (file), or any (LEDGER_WEBHOOK_KEYS, a single deployment)."""
        keys: dict[str, tuple[bytes, frozenset[str] | None]] = {
            key_id: (key, None) for key_id, key in self.webhook_keys.keys.items()
        }
        for account in self._merchant_accounts:
            for key_id, key in account.webhook_keys.keys.items():
                keys[key_id] = (key, frozenset(account.organizations))
        return keys

    @property
    def cybersource_organizations(self) -> tuple[str, ...]:
        """The organizations the merchants act for, in the order configured."""
        return tuple(org for account in self._merchant_accounts for org in account.organizations)

    @property
    def database(self) -> URL:
        return resolve_database_url(self.database_url)


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as error:
        problems = []
        for detail in error.errors():
            message = detail["msg"].removeprefix("Value error, ")
            if detail["loc"]:  # one variable; otherwise the message names the variables
                message = f"{ENVIRONMENT_PREFIX}{str(detail['loc'][0]).upper()}: {message}"
            problems.append(message)
        raise ConfigurationError("invalid configuration: " + "; ".join(problems)) from None
