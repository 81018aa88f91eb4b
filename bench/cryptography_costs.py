"""What the cryptography costs where it meets a delivery or a call: process CPU per operation,
each beside the cheapest check on the same path (the webhook signature's HMAC, and HTTP
Signature), measured in alternating rounds of one run.

    python -m bench.cryptography_costs [--rounds 5]

Operations, per notification of about 1 KB (the documented invoicing envelope):
- the webhook signature checked over a clear body (the baseline of the receiving side);
- the same check over an encrypted body, then its decryption (RSA-OAEP-256 + A256GCM, 2048-bit
  key), as the receiver does for an encrypted notification signed as received;
- a payer's customer sealed (keyed hashes and AES-256-GCM under its data key), and opened;
- a REST call authenticated with HTTP Signature (the baseline of the calling side), and with a
  JWT (RS256).

Process CPU (``time.process_time``) moves far less with the machine's load than wall time;
the figures are medians over the rounds.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import time
from collections.abc import Callable

from service.cybersource.http_signature import MerchantCredentials
from service.cybersource.jwt_authentication import CertificateCredentials
from service.cybersource.keys import generate_certified_key
from service.cybersource.message_encryption import (
    NotificationKeyring,
    Shape,
    encrypt_notification,
    encrypted_notification,
)
from service.cybersource.webhook_signature import SignedContent, WebhookVerifier, sign
from service.store.personal_data.sealing import MasterKey, open_customer, seal_customer

KEY_ID = "bench-key"
WEBHOOK_KEY = secrets.token_bytes(32)
CUSTOMER = {"name": "Tanya Lee", "email": "tanya.lee@example.com"}


def notification() -> bytes:
    """The documented invoicing envelope, about a kilobyte."""
    data = {
        "invoiceNumber": "20220389",
        "organizationID": "acme_merchant",
        "merchantReferenceCode": "REF-20220389",
        "totalAmount": "102.00",
        "balanceAmount": "102.00",
        "currency": "USD",
        "dueDate": "2026-12-31",
        "payerName": CUSTOMER["name"],
        "emailTo": CUSTOMER["email"],
        "invoiceDescription": "Monthly services, December",
        "paymentLink": "https://businesscenter.cybersource.com/ebc2/invoicing/payInvoice/x",
    }
    envelope = {
        "notificationId": "5f1c6c1e-8b39-4e1f-9a43-0c2c41f9b6d1",
        "retryNumber": 0,
        "eventType": "invoicing.customer.invoice.send",
        "eventDate": "2026-12-07T10:00:00.000Z",
        "webhookId": "c3d4d5e6-0000-4000-8000-000000000001",
        "transactionTraceId": "4f3a6d2e-1111-4222-8333-444455556666",
        "payloads": [{"data": data, "organizationId": "acme_merchant"}],
        "productId": "customerInvoicing",
        "requestType": "NEW",
    }
    return json.dumps(envelope).encode()


def cpu_microseconds(operation: Callable[[], object], repeats: int) -> float:
    started = time.process_time()
    for _ in range(repeats):
        operation()
    return (time.process_time() - started) / repeats * 1e6


def operations() -> dict[str, tuple[Callable[[], object], int]]:
    clear = notification()
    key = generate_certified_key("acme_merchant", "7030519352760180401")
    assert key.certificate is not None
    encrypted = encrypt_notification(clear, key.certificate, Shape.ENC_DATA)
    keyring = NotificationKeyring([key])
    verifier = WebhookVerifier(
        {KEY_ID: WEBHOOK_KEY}, tolerance_seconds=10**9, signed_content=SignedContent.RAW
    )
    now_ms = int(time.time() * 1000)
    clear_header = sign(KEY_ID, WEBHOOK_KEY, clear, now_ms)
    encrypted_header = sign(KEY_ID, WEBHOOK_KEY, encrypted, now_ms)

    def receive_encrypted() -> object:
        verifier.verify(encrypted_header, encrypted, now_ms)
        found = encrypted_notification(encrypted)
        assert found is not None
        return keyring.decrypt(found)

    master = MasterKey(secrets.token_bytes(32))
    payer = master.payer(CUSTOMER["name"], CUSTOMER["email"])
    assert payer is not None
    data_key = secrets.token_bytes(32)

    def seal() -> object:
        master.payer(CUSTOMER["name"], CUSTOMER["email"])
        master.customer_digest(CUSTOMER)
        return seal_customer(payer, data_key, CUSTOMER)

    sealed = seal_customer(payer, data_key, CUSTOMER)
    shared = MerchantCredentials("acme_merchant", "key-id", secrets.token_bytes(32))
    certified = CertificateCredentials("acme_merchant", key)
    call = {
        "method": "GET",
        "host": "apitest.cybersource.com",
        "path_and_query": "/invoicing/v2/invoices/20220389",
        "body": b"",
        "organization_id": "acme_merchant",
    }
    return {
        "webhook signature, clear body (baseline)": (
            lambda: verifier.verify(clear_header, clear, now_ms),
            20_000,
        ),
        "webhook signature + decryption, encrypted body": (receive_encrypted, 300),
        "seal a customer (hashes + AES-GCM)": (seal, 5_000),
        "open a sealed customer": (lambda: open_customer(sealed, data_key), 5_000),
        "REST call, HTTP Signature (baseline)": (
            lambda: shared.authenticate(**call, now=time.time()),  # type: ignore[arg-type]
            5_000,
        ),
        "REST call, JWT (RS256)": (
            lambda: certified.authenticate(**call, now=time.time()),  # type: ignore[arg-type]
            300,
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    measured: dict[str, list[float]] = {}
    work = operations()
    for _ in range(rounds):
        for name, (operation, repeats) in work.items():
            measured.setdefault(name, []).append(cpu_microseconds(operation, repeats))
    medians = {name: statistics.median(values) for name, values in measured.items()}
    receiving = medians["webhook signature, clear body (baseline)"]
    calling = medians["REST call, HTTP Signature (baseline)"]
    print(f"{'operation':52} {'CPU µs':>10} {'x baseline':>11}")
    for name, micros in medians.items():
        baseline = calling if name.startswith("REST") else receiving
        print(f"{name:52} {micros:10.1f} {micros / baseline:11.1f}")


if __name__ == "__main__":
    main()
