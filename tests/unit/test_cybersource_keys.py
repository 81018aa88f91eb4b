"""Merchant keys from PEM and PKCS#12 files, named as Cybersource names them."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from service.cybersource.keys import (
    CertifiedKey,
    KeyMaterialError,
    generate_certified_key,
    load_certified_key,
    load_certified_keys,
)

with warnings.catch_warnings():
    # The official SDK imports pkg_resources and other deprecated modules.
    warnings.simplefilter("ignore")
    import CyberSource  # noqa: F401  (first: the SDK's own modules import one another in a cycle)
    from authenticationsdk.util.CertificateUtility import CertificateUtility

PASSWORD = b"correct horse battery"


@pytest.fixture(scope="module")
def merchant_key() -> CertifiedKey:
    return generate_certified_key("acme_merchant", "7030519352760180401")


def test_the_kid_is_the_subject_serial_number_as_the_sdk_reads_it(
    merchant_key: CertifiedKey,
) -> None:
    sdk_kid = CertificateUtility.extract_serial_number_from_certificate(merchant_key.certificate)
    assert merchant_key.kid == sdk_kid == "7030519352760180401"
    assert merchant_key.common_name == "acme_merchant"
    # A header may also name the certificate's own serial number, in decimal or hex.
    serial = merchant_key.certificate.serial_number
    assert {str(serial), format(serial, "x")} <= merchant_key.identifiers


def test_pkcs12_round_trip_finds_the_key_and_its_certificate(
    merchant_key: CertifiedKey, tmp_path: Path
) -> None:
    path = tmp_path / "acme_merchant.p12"
    path.write_bytes(merchant_key.pkcs12(PASSWORD))
    loaded = load_certified_key(path, PASSWORD)
    assert loaded.kid == merchant_key.kid
    assert loaded.fingerprint == merchant_key.fingerprint
    assert loaded.not_after == merchant_key.not_after


def test_pkcs12_with_a_wrong_password_is_named_not_shown(
    merchant_key: CertifiedKey, tmp_path: Path
) -> None:
    path = tmp_path / "acme_merchant.p12"
    path.write_bytes(merchant_key.pkcs12(PASSWORD))
    with pytest.raises(KeyMaterialError, match="password does not open it") as raised:
        load_certified_key(path, b"Tr0ub4dor&3")
    assert "Tr0ub4dor" not in str(raised.value)


def test_pem_key_with_the_certificate_in_the_same_or_its_own_file(
    merchant_key: CertifiedKey, tmp_path: Path
) -> None:
    together = tmp_path / "together.pem"
    together.write_bytes(merchant_key.private_key_pem(PASSWORD) + merchant_key.certificate_pem())
    assert load_certified_key(together, PASSWORD).kid == merchant_key.kid

    key_file, certificate_file = tmp_path / "key.pem", tmp_path / "cert.crt"
    key_file.write_bytes(merchant_key.private_key_pem())
    certificate_file.write_bytes(merchant_key.certificate_pem())
    assert load_certified_key(key_file, None, certificate_file).kid == merchant_key.kid

    with pytest.raises(KeyMaterialError, match="needs its password"):
        load_certified_key(together, None)
    with pytest.raises(KeyMaterialError, match="not encrypted"):
        load_certified_key(key_file, PASSWORD)


def test_a_bare_pem_key_is_named_by_its_public_key(
    merchant_key: CertifiedKey, tmp_path: Path
) -> None:
    path = tmp_path / "bare.key"
    path.write_bytes(merchant_key.private_key_pem())
    loaded = load_certified_key(path)
    assert loaded.certificate is None
    assert loaded.kid == loaded.fingerprint != merchant_key.fingerprint


def test_a_certificate_of_another_key_is_refused(
    merchant_key: CertifiedKey, tmp_path: Path
) -> None:
    other = generate_certified_key("other", "1")
    path = tmp_path / "mixed.pem"
    path.write_bytes(merchant_key.private_key_pem() + other.certificate_pem())
    with pytest.raises(KeyMaterialError, match="no certificate in it belongs to its private key"):
        load_certified_key(path)


def test_a_directory_holds_several_keys_for_rotation(
    merchant_key: CertifiedKey, tmp_path: Path
) -> None:
    newer = generate_certified_key("acme_merchant", "7030519352760180402")
    (tmp_path / "old.p12").write_bytes(merchant_key.pkcs12(PASSWORD))
    (tmp_path / "new.p12").write_bytes(newer.pkcs12(PASSWORD))
    (tmp_path / "README").write_text("mounted secret")
    kids = {key.kid for key in load_certified_keys(tmp_path, PASSWORD)}
    assert kids == {merchant_key.kid, newer.kid}
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(KeyMaterialError, match="holds no private key"):
        load_certified_keys(empty)


def test_keys_that_cannot_serve_are_refused(tmp_path: Path) -> None:
    elliptic = tmp_path / "ec.pem"
    elliptic.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(KeyMaterialError, match="not RSA"):
        load_certified_key(elliptic)
    short = tmp_path / "short.pem"
    short.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(KeyMaterialError, match="1024 bits"):
        load_certified_key(short)
    with pytest.raises(KeyMaterialError, match="no such file"):
        load_certified_key(tmp_path / "absent.p12")
    garbage = tmp_path / "garbage.p12"
    garbage.write_bytes(b"\x00" * 40)
    with pytest.raises(KeyMaterialError, match="not a PKCS#12 file"):
        load_certified_key(garbage)


def test_the_repr_shows_no_key(merchant_key: CertifiedKey) -> None:
    shown = repr(merchant_key)
    assert merchant_key.kid in shown and "PRIVATE" not in shown and "RSAPrivateKey" not in shown


def test_in_a_directory_a_pem_key_finds_its_certificate_and_a_key_counts_once(
    merchant_key: CertifiedKey, tmp_path: Path
) -> None:
    (tmp_path / "merchant.key").write_bytes(merchant_key.private_key_pem(PASSWORD))
    (tmp_path / "merchant.crt").write_bytes(merchant_key.certificate_pem())
    (tmp_path / "merchant.p12").write_bytes(merchant_key.pkcs12(PASSWORD))
    [key] = load_certified_keys(tmp_path, PASSWORD)
    assert key.kid == merchant_key.kid and key.certificate == merchant_key.certificate


def test_a_pem_file_with_two_private_keys_is_refused_not_half_read(
    merchant_key: CertifiedKey, tmp_path: Path
) -> None:
    other = generate_certified_key("acme_merchant", "2")
    path = tmp_path / "two.pem"
    path.write_bytes(
        merchant_key.private_key_pem() + merchant_key.certificate_pem()
        + other.private_key_pem() + other.certificate_pem()
    )  # fmt: skip
    with pytest.raises(KeyMaterialError, match="holds 2 private keys"):
        load_certified_keys(path)
