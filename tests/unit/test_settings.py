from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from service.configured_keys import merchant_credentials
from service.settings import (
    ConfigurationError,
    UnsupportedDatabaseUrl,
    WebhookKeyring,
    load_settings,
    resolve_database_url,
)

KEY_32 = base64.b64encode(b"x" * 32).decode()


@pytest.mark.parametrize(
    ("written", "driver", "database"),
    [
        ("sqlite:///var/ledger.db", "sqlite+aiosqlite", "var/ledger.db"),
        ("sqlite:////srv/ledger/ledger.db", "sqlite+aiosqlite", "/srv/ledger/ledger.db"),
        ("postgresql://ledger@db.internal/ledger", "postgresql+asyncpg", "ledger"),
        ("postgresql://ledger:s3cret@db:6432/ledger", "postgresql+asyncpg", "ledger"),
        ("postgres://ledger@db/ledger", "postgresql+asyncpg", "ledger"),
    ],
)
def test_database_urls_are_accepted_as_users_write_them(
    written: str, driver: str, database: str
) -> None:
    url = resolve_database_url(written)
    assert (url.drivername, url.database) == (driver, database)


@pytest.mark.parametrize(
    ("written", "problem"),
    [
        ("mysql://root@localhost/ledger", "unsupported database 'mysql'"),
        ("sqlite://", "must name a file"),
        ("sqlite:///:memory:", "in-memory"),
        ("postgresql://ledger@db", "must name a database"),
        ("not a url", "is not a database URL"),
    ],
)
def test_unusable_database_urls_are_refused_saying_why(written: str, problem: str) -> None:
    with pytest.raises(UnsupportedDatabaseUrl, match=problem):
        resolve_database_url(written)


def test_a_refused_database_url_does_not_echo_its_password() -> None:
    with pytest.raises(ConfigurationError) as refused:
        load_settings(database_url="mysql://root:hunter2@db/ledger")
    assert "LEDGER_DATABASE_URL" in str(refused.value)
    assert "hunter2" not in str(refused.value)


def test_several_webhook_keys_parse_and_their_repr_hides_the_secrets() -> None:
    secret = base64.b64encode(b"s" * 32).decode()
    keyring = WebhookKeyring.parse(f"old:{secret}, new:{secret}")
    assert sorted(keyring.keys) == ["new", "old"]
    assert keyring.keys["new"] == b"s" * 32
    assert secret not in repr(keyring) and secret not in repr(
        load_settings(webhook_keys=f"k:{secret}")
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("no-separator", "not keyId:base64key"),
        ("k:***", "not valid base64"),
        (f"k:{base64.b64encode(b'short').decode()}", "shorter than 16 bytes"),
        (
            f"k:{base64.b64encode(b'x' * 32).decode()},k:{base64.b64encode(b'y' * 32).decode()}",
            "twice",
        ),
    ],
)
def test_malformed_webhook_keys_stop_start_up_naming_the_variable(value: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=f"LEDGER_WEBHOOK_KEYS: .*{problem}"):
        load_settings(webhook_keys=value)


@pytest.mark.parametrize(
    ("field", "value", "variable"),
    [
        ("webhook_tolerance_seconds", 0, "LEDGER_WEBHOOK_TOLERANCE_SECONDS"),
        ("webhook_signed_content", "body", "LEDGER_WEBHOOK_SIGNED_CONTENT"),
        ("max_body_bytes", 10, "LEDGER_MAX_BODY_BYTES"),
        ("log_level", "LOUD", "LEDGER_LOG_LEVEL"),
    ],
)
def test_out_of_range_settings_name_their_variable(
    field: str, value: object, variable: str
) -> None:
    with pytest.raises(ConfigurationError, match=variable):
        load_settings(**{field: value})


def test_cybersource_credentials_go_together_and_are_off_when_absent() -> None:
    assert merchant_credentials(load_settings()) is None
    with pytest.raises(ConfigurationError, match="LEDGER_CYBERSOURCE_SECRET_KEY go together"):
        load_settings(cybersource_merchant_id="m", cybersource_key_id="k")
    with pytest.raises(ConfigurationError, match="not valid base64"):
        load_settings(
            cybersource_merchant_id="m", cybersource_key_id="k", cybersource_secret_key="*"
        )
    settings = load_settings(
        cybersource_merchant_id="m", cybersource_key_id="k", cybersource_secret_key=KEY_32
    )
    credentials = merchant_credentials(settings)
    assert credentials is not None and credentials.secret_key == b"x" * 32
    assert KEY_32 not in repr(settings) and KEY_32 not in repr(credentials)


def test_api_tokens_are_read_or_operator_tokens_and_their_repr_hides_them() -> None:
    settings = load_settings(api_tokens="read-token-0123456789, operator:operator-token-0123456789")
    assert settings.api_tokens.tokens == ("read-token-0123456789",)
    assert settings.api_tokens.operator_tokens == ("operator-token-0123456789",)
    assert "0123456789" not in repr(settings.api_tokens)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("admin:secret-token-0123456789", "entry 1 is neither TOKEN, operator:TOKEN nor SCOPE@"),
        ("read-token-0123456789,operator:short", "entry 2: every token must be at least 16"),
        ("same-token-0123456789,operator:same-token-0123456789", "entry 2 repeats a token"),
    ],
)
def test_invalid_api_token_entries_stop_start_up_naming_the_variable_not_the_token(
    value: str, problem: str
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        load_settings(api_tokens=value)
    message = str(refused.value)
    assert "LEDGER_API_TOKENS" in message and problem in message
    assert "0123456789" not in message and "short" not in message.replace(problem, "")


@pytest.mark.parametrize(
    ("field", "value", "variable"),
    [
        ("shutdown_grace_seconds", 0, "LEDGER_SHUTDOWN_GRACE_SECONDS"),
        ("webhook_key_expires_at", "next spring", "LEDGER_WEBHOOK_KEY_EXPIRES_AT"),
        ("refusals_recorded_per_second", -1, "LEDGER_REFUSALS_RECORDED_PER_SECOND"),
        ("retention_refused_days", 0, "LEDGER_RETENTION_REFUSED_DAYS"),
        ("retention_accepted_days", "soon", "LEDGER_RETENTION_ACCEPTED_DAYS"),
        ("projector_batch_interval_seconds", 0.6, "LEDGER_PROJECTOR_BATCH_INTERVAL_SECONDS"),
        ("projector_batch_interval_seconds", -0.1, "LEDGER_PROJECTOR_BATCH_INTERVAL_SECONDS"),
    ],
)
def test_operations_settings_out_of_range_name_their_variable(
    field: str, value: object, variable: str
) -> None:
    with pytest.raises(ConfigurationError, match=variable):
        load_settings(**{field: value})


def test_the_key_expiry_reads_a_date_as_midnight_utc_and_keeps_an_offset() -> None:
    assert load_settings(webhook_key_expires_at="2027-03-31").webhook_key_expires_at == (
        datetime(2027, 3, 31, tzinfo=UTC)
    )
    with_offset = load_settings(webhook_key_expires_at="2027-03-31T12:00:00+02:00")
    assert with_offset.webhook_key_expires_at == datetime(2027, 3, 31, 10, tzinfo=UTC)


def test_retention_is_on_for_refusals_and_off_for_accepted_deliveries_by_default() -> None:
    settings = load_settings()
    assert (settings.retention_refused_days, settings.retention_accepted_days) == (30, None)
    assert load_settings(retention_refused_days="off").retention_refused_days is None
    assert load_settings(retention_accepted_days="90").retention_accepted_days == 90
