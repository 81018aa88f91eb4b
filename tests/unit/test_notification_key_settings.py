"""The notification decryption keys' settings: files and secret directories, one password or
a file holding it, and a start-up refusal that names what cannot be used."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.configured_keys import notification_keyring
from service.cybersource.keys import CertifiedKey
from service.settings import ConfigurationError, load_settings
from tests.support.encryption import KEY_PASSWORD, key_files, notification_key


@pytest.fixture(scope="module")
def keys() -> list[CertifiedKey]:
    return [notification_key("1001"), notification_key("1002")]


def test_comma_separated_files_give_every_key_in_order(
    tmp_path: Path, keys: list[CertifiedKey]
) -> None:
    paths = key_files(tmp_path, *keys).replace(",", " , ")
    settings = load_settings(
        notification_decryption_keys=paths, notification_decryption_key_password=KEY_PASSWORD
    )
    assert notification_keyring(settings).kids == ["1001", "1002"]


def test_a_mounted_secret_directory_and_a_password_file_ending_in_a_newline(
    tmp_path: Path, keys: list[CertifiedKey]
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    key_files(secrets, *keys)
    (secrets / "README").write_text("not a key")
    password_file = tmp_path / "password"
    password_file.write_text(KEY_PASSWORD + "\n")
    settings = load_settings(
        notification_decryption_keys=str(secrets),
        notification_decryption_key_password_file=str(password_file),
    )
    assert sorted(notification_keyring(settings).kids) == ["1001", "1002"]


def test_a_password_and_a_password_file_exclude_each_other() -> None:
    settings = load_settings(
        notification_decryption_key_password="x",
        notification_decryption_key_password_file="/run/secrets/password",
    )
    with pytest.raises(ConfigurationError, match="exclude each other"):
        notification_keyring(settings)


def test_an_unreadable_password_file_names_the_variable_and_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-password"
    settings = load_settings(
        notification_decryption_keys=str(tmp_path),
        notification_decryption_key_password_file=str(missing),
    )
    with pytest.raises(ConfigurationError) as raised:
        notification_keyring(settings)
    assert "LEDGER_NOTIFICATION_DECRYPTION_KEY_PASSWORD_FILE" in str(raised.value)
    assert str(missing) in str(raised.value)


def test_a_key_file_that_does_not_open_is_named_never_its_password(
    tmp_path: Path, keys: list[CertifiedKey]
) -> None:
    path = key_files(tmp_path, keys[0])
    settings = load_settings(
        notification_decryption_keys=path, notification_decryption_key_password="wrong-one"
    )
    with pytest.raises(ConfigurationError) as raised:
        notification_keyring(settings)
    message = str(raised.value)
    assert message.startswith("LEDGER_NOTIFICATION_DECRYPTION_KEYS: ") and path in message
    assert "wrong-one" not in message


def test_no_keys_configured_is_an_empty_keyring() -> None:
    assert notification_keyring(load_settings()).kids == []
