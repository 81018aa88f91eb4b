"""LEDGER_MERCHANTS_FILE: several merchants, each checked on its own and against the others,
with errors that name the file, the merchant and the field, and never a secret."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from service.configured_keys import account_credentials, webhook_key_organizations
from service.settings import ConfigurationError, load_settings

SECRET = base64.b64encode(b"a-shared-secret-of-32-bytes-0123").decode()
WEBHOOK_SECRET = base64.b64encode(b"webhook-signing-key-0123456789").decode()
ACME = f"""
[[merchants]]
id = "acme"
organizations = ["acme", "acme_eu"]
key_id = "acme-key"
secret_key = "{SECRET}"
webhook_keys = "acme-hook:{WEBHOOK_SECRET}"
"""
BETA = f"""
[[merchants]]
id = "beta"
key_id = "beta-key"
secret_key = "{SECRET}"
webhook_keys = "beta-hook:{WEBHOOK_SECRET}"
max_requests_per_second = 2
"""


def merchants_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "merchants.toml"
    path.write_text(text)
    return str(path)


def refused(tmp_path: Path, text: str, **more: str) -> str:
    with pytest.raises(ConfigurationError) as error:
        load_settings(merchants_file=merchants_file(tmp_path, text), **more)
    message = str(error.value)
    assert SECRET not in message and WEBHOOK_SECRET not in message
    return message


def test_each_merchant_brings_its_credentials_organizations_keys_and_rate(tmp_path: Path) -> None:
    settings = load_settings(merchants_file=merchants_file(tmp_path, ACME + BETA))
    acme, beta = settings.merchant_accounts
    assert (acme.merchant_id, acme.organizations) == ("acme", ("acme", "acme_eu"))
    assert (beta.organizations, beta.max_requests_per_second) == (("beta",), 2)
    assert settings.cybersource_organizations == ("acme", "acme_eu", "beta")
    credentials = account_credentials(beta)
    assert credentials is not None and credentials.merchant_id == "beta"
    # A merchant's webhook key signs for its organizations only.
    assert webhook_key_organizations(settings) == {
        "acme-hook": frozenset({"acme", "acme_eu"}),
        "beta-hook": frozenset({"beta"}),
    }
    assert SECRET not in repr(settings) and WEBHOOK_SECRET not in repr(settings)


def test_secrets_may_be_files_of_their_own_beside_the_merchants_file(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "beta_secret").write_text(SECRET + "\n")
    text = BETA.replace(f'secret_key = "{SECRET}"', 'secret_key_file = "secrets/beta_secret"')
    settings = load_settings(merchants_file=merchants_file(tmp_path, text))
    [beta] = settings.merchant_accounts
    assert beta.secret_key is not None and beta.secret_key.get_secret_value() == SECRET


def test_a_single_merchant_from_the_environment_keeps_working_unchanged() -> None:
    settings = load_settings(
        cybersource_merchant_id="solo", cybersource_key_id="k", cybersource_secret_key=SECRET,
        webhook_keys=f"hook:{WEBHOOK_SECRET}",
    )  # fmt: skip
    [solo] = settings.merchant_accounts
    assert solo.organizations == ("solo",)
    # LEDGER_WEBHOOK_KEYS sign for any organization, as they always did.
    assert webhook_key_organizations(settings) == {}
    assert settings.webhook_keys_by_id["hook"][1] is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("merchants = []", "merchants: needs 1 to 1000 [[merchants]] tables, not 0"),
        ("[[merchants]]\nid = 'x'\ncolour = 'red'", "merchants[0].colour: Extra inputs"),
        ("[[merchants]]\nid = 'not an id!'", "merchants[0].id: String should match"),
        ("[[merchants]\nid = 'x'", "is not TOML"),
        (ACME + ACME, "merchant 'acme' appears twice"),
        (
            ACME + ACME.replace('id = "acme"', 'id = "other"').replace("acme-hook", "other-hook"),
            "organization 'acme' is listed by merchants 'acme' and 'other'",
        ),
        (
            ACME + BETA.replace("beta-hook", "acme-hook"),
            "webhook keyId 'acme-hook' is given to merchants 'acme' and 'beta'",
        ),
        (BETA.replace('key_id = "beta-key"\n', ""), "key_id and secret_key go together"),
        (BETA.replace(SECRET, "not base64!"), "merchants[0].secret_key: is not valid base64"),
        (BETA.replace(WEBHOOK_SECRET, "c2hvcnQ="), "shorter than 16 bytes"),
        (BETA + 'secret_key_file = "elsewhere"', "secret_key and secret_key_file exclude"),
        (BETA.replace('key_id = "beta-key"', 'auth = "jwt"'), "auth jwt needs key_file"),
    ],
)
def test_a_merchants_file_that_cannot_be_used_stops_start_up_naming_what(
    tmp_path: Path, text: str, problem: str
) -> None:
    message = refused(tmp_path, text)
    assert "LEDGER_MERCHANTS_FILE" in message and problem in message, message


def test_an_unreadable_merchants_file_or_secret_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"merchants\.toml: cannot be read"):
        load_settings(merchants_file=str(tmp_path / "merchants.toml"))
    text = BETA.replace(f'secret_key = "{SECRET}"', 'secret_key_file = "missing"')
    assert "secret_key_file missing: cannot be read" in refused(tmp_path, text)


def test_the_merchants_file_replaces_the_single_merchants_settings(tmp_path: Path) -> None:
    message = refused(
        tmp_path, BETA,
        cybersource_merchant_id="solo", cybersource_key_id="k", cybersource_secret_key=SECRET,
    )  # fmt: skip
    assert "unset LEDGER_CYBERSOURCE_MERCHANT_ID, LEDGER_CYBERSOURCE_KEY_ID" in message
    message = refused(tmp_path, BETA, webhook_keys=f"hook:{WEBHOOK_SECRET}")
    assert "unset LEDGER_WEBHOOK_KEYS" in message


def test_tokens_may_be_limited_to_configured_merchants_only(tmp_path: Path) -> None:
    token = "read-token-for-beta-0123"
    settings = load_settings(
        merchants_file=merchants_file(tmp_path, ACME + BETA),
        api_tokens=f"read@beta:{token},operator@acme+beta:operator-token-0123456,plain-token-0123456",
    )
    tokens = settings.api_tokens
    assert tokens.merchants_by_token == {
        token: frozenset({"beta"}),
        "operator-token-0123456": frozenset({"acme", "beta"}),
    }
    assert "plain-token-0123456" in tokens.tokens and token not in repr(tokens)
    message = refused(tmp_path, BETA, api_tokens=f"read@gamma:{token}")
    assert "LEDGER_API_TOKENS: no merchant 'gamma' is configured" in message
    assert token not in message


def test_a_key_file_that_cannot_be_used_is_named_with_its_merchant(tmp_path: Path) -> None:
    (tmp_path / "not_a_key.p12").write_bytes(b"not a PKCS#12 file")
    text = '[[merchants]]\nid = "gamma"\nauth = "jwt"\nkey_file = "not_a_key.p12"\n'
    settings = load_settings(merchants_file=merchants_file(tmp_path, text))
    [gamma] = settings.merchant_accounts
    with pytest.raises(ConfigurationError) as refused:
        account_credentials(gamma)
    assert str(refused.value).startswith("LEDGER_MERCHANTS_FILE: merchant 'gamma': key_file: ")
    solo = load_settings(
        cybersource_merchant_id="solo", cybersource_auth="jwt",
        cybersource_key_file=str(tmp_path / "not_a_key.p12"),
    ).merchant_accounts[0]  # fmt: skip
    with pytest.raises(ConfigurationError, match=r"^LEDGER_CYBERSOURCE_KEY_FILE: "):
        account_credentials(solo)


def test_a_merchants_mistake_is_the_only_problem_named(tmp_path: Path) -> None:
    message = refused(tmp_path, BETA.replace(SECRET, "not base64!"))
    assert message.endswith("merchants[0].secret_key: is not valid base64"), message


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("auth", "jwt"),
        ("key_password", "hunter2-password"),
        ("certificate_file", "/run/secrets/certificate.pem"),
        ("max_requests_per_second", "50"),
    ],
)
def test_every_single_merchant_setting_is_named_beside_a_merchants_file(
    tmp_path: Path, setting: str, value: str
) -> None:
    """Set beside the file, it would be ignored (each merchant's own are in the file): named
    to unset, and alone, not with a message asking for the settings the file replaces."""
    message = refused(tmp_path, BETA, **{f"cybersource_{setting}": value})
    assert message.endswith(f"unset LEDGER_CYBERSOURCE_{setting.upper()}"), message
    assert "hunter2" not in message


def test_webhook_keys_written_one_a_line_are_refused_without_naming_a_key(tmp_path: Path) -> None:
    """Read as one entry, the first key would end up inside a keyId, which start-up logs."""
    (tmp_path / "hooks").write_text(f"beta-hook:{WEBHOOK_SECRET}\nbeta-hook-2:{SECRET}\n")
    text = BETA.replace(
        f'webhook_keys = "beta-hook:{WEBHOOK_SECRET}"', 'webhook_keys_file = "hooks"'
    )
    message = refused(tmp_path, text)
    assert "merchants[0].webhook_keys: entry 1 is not keyId:base64key" in message, message


def test_an_empty_organizations_list_is_refused_rather_than_read_as_the_merchants_own(
    tmp_path: Path,
) -> None:
    message = refused(tmp_path, BETA + "organizations = []\n")
    assert "merchants[0].organizations: Tuple should have at least 1 item" in message, message
