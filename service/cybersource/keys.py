"""A merchant's RSA key and its certificate, read from PEM or PKCS#12, or made for local use.

Cybersource uses the same kind of key twice: the REST API's certificate authentication signs a
JWT with it (RS256), and message-level encryption wraps each notification's content key for it
(RSA-OAEP-256). Cybersource names a key by the ``serialNumber`` attribute of its certificate's
subject (what the official SDK sends as the JWT's ``kid``), which is not the certificate's own
serial number; both are kept, so a notification naming either finds its key.

Nothing here logs, and a key's repr shows its identifiers only.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

# What a key directory's files may be; anything else in it (a README, a .gitkeep) is skipped.
PKCS12_SUFFIXES = frozenset({".p12", ".pfx"})
PEM_SUFFIXES = frozenset({".pem", ".key", ".crt"})
RSA_KEY_BITS_MIN = 2048
_PEM_PRIVATE_KEY = re.compile(rb"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----")


class KeyMaterialError(ValueError):
    """A key file that cannot be used; the message names the file, never its content."""


@dataclass(frozen=True, repr=False, eq=False)
class CertifiedKey:
    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate | None
    source: str  # the file it came from, for messages

    def __repr__(self) -> str:
        return f"CertifiedKey(kid={self.kid!r}, source={self.source!r})"

    @property
    def subject_serial_number(self) -> str | None:
        """The subject's ``serialNumber`` attribute: Cybersource's name for the key."""
        return subject_serial_number(self.certificate) if self.certificate is not None else None

    @property
    def kid(self) -> str:
        """The key's name: the subject's serialNumber, else the certificate's serial number,
        else the public key's fingerprint (a bare key without a certificate)."""
        if self.subject_serial_number:
            return self.subject_serial_number
        if self.certificate is not None:
            return str(self.certificate.serial_number)
        return self.fingerprint

    @property
    def identifiers(self) -> frozenset[str]:
        """Every name a JWE header's ``kid`` may give this key."""
        names = {self.kid, self.fingerprint}
        if self.certificate is not None:
            serial = self.certificate.serial_number
            names |= {str(serial), format(serial, "x"), format(serial, "X")}
        return frozenset(names)

    @property
    def common_name(self) -> str | None:
        if self.certificate is None:
            return None
        for attribute in self.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
            return str(attribute.value)
        return None

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the certificate (DER), or of the public key when there is none."""
        if self.certificate is not None:
            return self.certificate.fingerprint(hashes.SHA256()).hex()
        public = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hashlib.sha256(public).hexdigest()

    @property
    def not_after(self) -> datetime | None:
        return self.certificate.not_valid_after_utc if self.certificate is not None else None

    def certificate_pem(self) -> bytes:
        if self.certificate is None:
            raise KeyMaterialError(f"{self.source}: the key has no certificate")
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def private_key_pem(self, password: bytes | None = None) -> bytes:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password)
            if password
            else serialization.NoEncryption()
        )
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    def pkcs12(self, password: bytes, name: str | None = None) -> bytes:
        """The key and certificate as one PKCS#12 file, as Cybersource's Business Center
        issues them (the certificate's friendly name is its common name)."""
        label = (name or self.common_name or self.kid).encode()
        return pkcs12.serialize_key_and_certificates(
            label,
            self.private_key,
            self.certificate,
            None,
            serialization.BestAvailableEncryption(password),
        )


def subject_serial_number(certificate: x509.Certificate) -> str | None:
    """The subject's ``serialNumber`` attribute, which Cybersource names a key by."""
    for attribute in certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER):
        return str(attribute.value)
    return None


def load_certified_keys(path: Path, password: bytes | None = None) -> list[CertifiedKey]:
    """The keys in a file, or in the key files of a directory (a mounted secret).

    In a directory, a PEM key without its certificate takes it from a sibling ``.crt`` or
    ``.pem`` file, and one key found twice (as ``.p12`` and as ``.key``) counts once."""
    if not path.is_dir():
        return _keys_of_file(path, password)
    files = sorted(entry for entry in path.iterdir() if entry.is_file())
    certificates = [
        certificate
        for file in files
        if file.suffix.lower() in PEM_SUFFIXES and b"CERTIFICATE-----" in _read(file)
        for certificate in _certificates_of_pem(file, _read(file))
    ]
    found: dict[str, CertifiedKey] = {}
    for file in files:
        suffix = file.suffix.lower()
        if suffix in PEM_SUFFIXES and b"PRIVATE KEY-----" not in _read(file):
            continue  # a certificate only
        if suffix not in PKCS12_SUFFIXES | PEM_SUFFIXES:
            continue  # a README, a .gitkeep
        for key in _keys_of_file(file, password):
            if key.certificate is None:
                key = _with_certificate_among(key, certificates)
            found.setdefault(key.fingerprint, key)
    if not found:
        raise KeyMaterialError(f"{path}: the directory holds no private key")
    return list(found.values())


def _with_certificate_among(
    key: CertifiedKey, certificates: list[x509.Certificate]
) -> CertifiedKey:
    try:
        return CertifiedKey(
            key.private_key, _certificate_of(key.private_key, certificates, Path(key.source)),
            key.source,
        )  # fmt: skip
    except KeyMaterialError:
        return key  # no certificate of its own here: a bare key


def load_certified_key(
    path: Path, password: bytes | None = None, certificate_path: Path | None = None
) -> CertifiedKey:
    """One key from one file; its certificate from the same file or from ``certificate_path``."""
    if path.is_dir():
        raise KeyMaterialError(f"{path}: expected a key file, found a directory")
    if certificate_path is None:
        keys = _keys_of_file(path, password)
        if len(keys) != 1:
            raise KeyMaterialError(f"{path}: expected one private key, found {len(keys)}")
        return keys[0]
    private_key = _private_key_of_pem(path, _read(path), password)
    certificates = _certificates_of_pem(certificate_path, _read(certificate_path))
    return CertifiedKey(
        private_key, _certificate_of(private_key, certificates, certificate_path), str(path)
    )


def generate_certified_key(
    common_name: str,
    subject_serial_number: str,
    valid_days: int = 365,
    key_bits: int = 2048,
    now: datetime | None = None,
) -> CertifiedKey:
    """A new RSA key with a self-signed certificate shaped as Cybersource issues them
    (``CN=<merchant id>``, ``serialNumber=<key serial>``): for local use and the sandbox."""
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=key_bits)
    issued = (now or datetime.now(UTC)).replace(microsecond=0)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, subject_serial_number),
        ]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(issued - timedelta(minutes=5))
        .not_valid_after(issued + timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(private_key, hashes.SHA256())
    )
    return CertifiedKey(private_key, certificate, f"generated for {common_name}")


def _keys_of_file(path: Path, password: bytes | None) -> list[CertifiedKey]:
    content = _read(path)
    if path.suffix.lower() in PKCS12_SUFFIXES or not content.lstrip().startswith(b"-----"):
        return [_key_of_pkcs12(path, content, password)]
    private_key = _private_key_of_pem(path, content, password)
    certificates = _certificates_of_pem(path, content) if b"CERTIFICATE-----" in content else []
    certificate = _certificate_of(private_key, certificates, path) if certificates else None
    return [CertifiedKey(private_key, certificate, str(path))]


def _key_of_pkcs12(path: Path, content: bytes, password: bytes | None) -> CertifiedKey:
    try:
        private_key, certificate, others = pkcs12.load_key_and_certificates(content, password)
    except ValueError:
        raise KeyMaterialError(
            f"{path}: not a PKCS#12 file, or the password does not open it"
        ) from None
    if private_key is None:
        raise KeyMaterialError(f"{path}: the PKCS#12 file holds no private key")
    rsa_key = _rsa(path, private_key)
    candidates = [c for c in (certificate, *others) if c is not None]
    return CertifiedKey(rsa_key, _certificate_of(rsa_key, candidates, path), str(path))


def _private_key_of_pem(path: Path, content: bytes, password: bytes | None) -> rsa.RSAPrivateKey:
    keys = len(_PEM_PRIVATE_KEY.findall(content))
    if not keys:
        raise KeyMaterialError(f"{path}: holds no PEM private key")
    if keys > 1:
        # cryptography reads the first and ignores the rest: one would be lost in silence.
        raise KeyMaterialError(f"{path}: holds {keys} private keys; give each its own file")
    try:
        private_key = serialization.load_pem_private_key(content, password)
    except TypeError:  # encrypted without a password, or a password for a clear key
        raise KeyMaterialError(
            f"{path}: the key is encrypted and needs its password"
            if password is None
            else f"{path}: the key is not encrypted; give no password"
        ) from None
    except ValueError:
        raise KeyMaterialError(
            f"{path}: not a readable PEM private key, or the password is wrong"
        ) from None
    return _rsa(path, private_key)


def _certificates_of_pem(path: Path, content: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(content)
    except ValueError:
        raise KeyMaterialError(f"{path}: holds no readable PEM certificate") from None


def _certificate_of(
    private_key: rsa.RSAPrivateKey, certificates: Iterable[x509.Certificate], path: Path
) -> x509.Certificate:
    """The certificate of this key among a file's certificates (a PKCS#12 from the Business
    Center also carries Cybersource's own)."""
    public = private_key.public_key().public_numbers()
    for certificate in certificates:
        candidate = certificate.public_key()
        if isinstance(candidate, rsa.RSAPublicKey) and candidate.public_numbers() == public:
            return certificate
    raise KeyMaterialError(f"{path}: no certificate in it belongs to its private key")


def _rsa(path: Path, private_key: object) -> rsa.RSAPrivateKey:
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise KeyMaterialError(
            f"{path}: the key is not RSA (Cybersource's RS256 and RSA-OAEP-256 need RSA)"
        )
    if private_key.key_size < RSA_KEY_BITS_MIN:
        raise KeyMaterialError(
            f"{path}: the RSA key has {private_key.key_size} bits; at least"
            f" {RSA_KEY_BITS_MIN} are needed"
        )
    return private_key


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise KeyMaterialError(f"{path}: no such file") from None
    except OSError as error:
        raise KeyMaterialError(f"{path}: cannot be read ({error.strerror})") from None
