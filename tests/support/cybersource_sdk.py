"""Cybersource's official Python SDK (the dev extra), imported once, quietly: it imports
pkg_resources and other deprecated modules, and its own modules import one another in a cycle
that only importing ``CyberSource`` first resolves."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    CyberSource: Any = pytest.importorskip(
        "CyberSource", reason="cybersource-rest-client-python (the dev extra) is not installed"
    )
    from authenticationsdk.core.MerchantConfiguration import MerchantConfiguration
    from authenticationsdk.jwt.Token import JwtSignatureToken
    from authenticationsdk.util.CertificateUtility import CertificateUtility

__all__ = ["CertificateUtility", "CyberSource", "sdk_jwt", "sdk_jwt_config"]


def sdk_jwt_config(
    run_environment: str, merchant_id: str, p12_file: Path, password: str, **extra: Any
) -> dict[str, Any]:
    """The SDK's configuration for certificate (JWT) authentication with a PKCS#12 file."""
    return {
        "authentication_type": "jwt",
        "merchantid": merchant_id,
        "run_environment": run_environment,
        "keys_directory": str(p12_file.parent),
        "key_file_name": p12_file.stem,
        "key_alias": merchant_id,
        "key_password": password,
        **extra,
    }


def sdk_jwt(config: dict[str, Any], method: str, resource_path: str, body: str | None) -> str:
    """The token the SDK puts after ``Bearer`` for one request."""
    merchant_configuration = MerchantConfiguration()
    merchant_configuration.set_merchantconfig(config)
    merchant_configuration.validate_merchant_details(config)
    token = JwtSignatureToken()
    token.jwt_signature_token(
        merchant_configuration, merchant_configuration.get_time(), method, resource_path, body
    )
    return str(token.get_token())
