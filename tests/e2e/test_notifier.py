"""The built-in notifier, over real sockets on both engines: a receiver that fails first gets
the digest again with the same id, signed as Standard Webhooks; each item names its invoice,
reason and console link; nothing new waiting, no digest; a new dead letter, a new digest."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from service.app import create_app
from service.settings import load_settings
from tests.support.delivery_log import post_delivery, two_invoice_notification
from tests.support.server import serving
from tests.support.webhooks import WEBHOOK_KEYS_SETTING, encode, invoice_notification

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
INTERVAL_SECONDS = 0.5
WAIT_SECONDS = 30.0
CONSOLE = "https://ledger.example.com"


@dataclass
class Receiver:
    """Answers 503 to the first ``failures`` requests, then 204; keeps every request."""

    failures: int
    requests: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answered(self, status: int) -> list[tuple[dict[str, str], bytes]]:
        with self.lock:
            return [(headers, body) for headers, body, code in self.requests if code == status]


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    kept = Receiver(failures=1)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with kept.lock:
                status = 503 if len(kept.requests) < kept.failures else 204
                kept.requests.append(
                    ({k.lower(): v for k, v in self.headers.items()}, body, status)
                )
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield kept, f"http://127.0.0.1:{server.server_address[1]}/ledger-digests"
    finally:
        server.shutdown()
        server.server_close()


def eventually(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not check():
        assert time.monotonic() < deadline, "the digest did not arrive in time"
        time.sleep(0.05)


def verified(headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """The digest, once its signature checks out as the specification computes it."""
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == f"v1,{expected}"
    assert abs(time.time() - int(headers["webhook-timestamp"])) < 60
    document: dict[str, Any] = json.loads(body)
    return document


def test_a_digest_names_what_waits_is_retried_with_the_same_id_and_is_sent_once(
    database_url: str, receiver: tuple[Receiver, str]
) -> None:
    kept, url = receiver
    settings = load_settings(
        database_url=database_url,
        webhook_keys=WEBHOOK_KEYS_SETTING,
        webhook_items_max=1,
        notifier_url=url,
        notifier_secret=SECRET,
        notifier_interval_seconds=INTERVAL_SECONDS,
        console_public_url=CONSOLE,
    )
    with serving(create_app(settings)) as base_url, httpx.Client(base_url=base_url) as client:
        assert post_delivery(client, two_invoice_notification("n-unread")).status_code == 422
        for balance in ("10.00", "9.00"):
            body = encode(invoice_notification("INV-T", notification_id="n-twice", balance=balance))
            assert post_delivery(client, body).status_code == 200

        # The notifier may run between the posts: what counts is that every delivery is
        # told once, in whichever acknowledged digest.
        eventually(lambda: len(told(kept)) == 2)
        [(failed_headers, _)] = kept.answered(503)
        first_headers, _ = kept.answered(204)[0]
        assert failed_headers["webhook-id"] == first_headers["webhook-id"]  # the same, again
        items = told(kept)
        dead_letter, conflict = items["n-unread"], items["n-twice"]
        assert (dead_letter["kind"], dead_letter["invoiceNumber"]) == ("dead_letter", "INV-A")
        assert dead_letter["reason"].startswith("unusable_body")
        assert (
            dead_letter["consoleUrl"] == f"{CONSOLE}/console/deliveries/{dead_letter['deliveryId']}"
        )
        assert (conflict["kind"], conflict["invoiceNumber"]) == ("conflict", "INV-T")
        [with_conflict] = [digest for digest in digests(kept) if "n-twice" in names(digest)]
        assert with_conflict["type"] == "ledger.deliveries_waiting"
        assert with_conflict["waiting"] == {"deadLetters": 1, "conflicts": 1}

        sent = len(kept.requests)
        time.sleep(INTERVAL_SECONDS * 4)  # nothing new waits: nothing is sent
        assert len(kept.requests) == sent

        assert post_delivery(client, two_invoice_notification("n-later")).status_code == 422
        eventually(lambda: "n-later" in told(kept))
        later = digests(kept)[-1]
        assert names(later) == ["n-later"]
        assert later["waiting"] == {"deadLetters": 2, "conflicts": 1}
        acknowledged = len(kept.answered(204))
        metrics = client.get("/metrics").text
        assert f'ledger_notifier_digests_total{{outcome="sent"}} {acknowledged}.0' in metrics


def digests(kept: Receiver) -> list[dict[str, Any]]:
    """The acknowledged digests, each verified, in the order they came."""
    return [verified(headers, body) for headers, body in kept.answered(204)]


def names(digest: dict[str, Any]) -> list[str]:
    return [item["notificationId"] for item in digest["items"]]


def told(kept: Receiver) -> dict[str, dict[str, Any]]:
    """Every item of the acknowledged digests by notification id; none is told twice."""
    items = [item for digest in digests(kept) for item in digest["items"]]
    by_name = {item["notificationId"]: item for item in items}
    assert len(by_name) == len(items), "a delivery was told twice"
    return by_name


def test_a_digest_holding_fewer_items_than_wait_counts_every_one_it_left_out(
    database_url: str, receiver: tuple[Receiver, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("service.alerting.notifier.ITEMS_PER_DIGEST_MAX", 1)
    kept, url = receiver
    kept.failures = 0
    settings = load_settings(
        database_url=database_url,
        webhook_keys=WEBHOOK_KEYS_SETTING,
        webhook_items_max=1,
        notifier_url=url,
        notifier_secret=SECRET,
        notifier_interval_seconds=3.0,
    )
    with serving(create_app(settings)) as base_url, httpx.Client(base_url=base_url) as client:
        for number in range(4):
            body = two_invoice_notification(f"n-unread-{number}")
            assert post_delivery(client, body).status_code == 422
        eventually(lambda: len(kept.answered(204)) >= 2)
        first, second = (verified(*answered) for answered in kept.answered(204)[:2])
    assert [item["notificationId"] for item in first["items"]] == ["n-unread-0"]
    assert first["itemsOmitted"] == 3
    assert [item["notificationId"] for item in second["items"]] == ["n-unread-1"]
    assert second["itemsOmitted"] == 2


@pytest.fixture
def endless_receiver() -> Iterator[tuple[list[bytes], str]]:
    """Answers 200 to every digest, then a body that never ends."""
    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"x" * 65536
            try:
                while True:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except OSError:
                pass  # the notifier hung up

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield bodies, f"http://127.0.0.1:{server.server_address[1]}/ledger-digests"
    finally:
        server.shutdown()
        server.server_close()


def test_a_digest_answered_2xx_is_sent_once_however_long_the_answer_s_body(
    database_url: str, endless_receiver: tuple[list[bytes], str]
) -> None:
    bodies, url = endless_receiver
    settings = load_settings(
        database_url=database_url,
        webhook_keys=WEBHOOK_KEYS_SETTING,
        webhook_items_max=1,
        notifier_url=url,
        notifier_secret=SECRET,
        notifier_interval_seconds=INTERVAL_SECONDS,
    )
    with serving(create_app(settings)) as base_url, httpx.Client(base_url=base_url) as client:
        assert post_delivery(client, two_invoice_notification("n-unread")).status_code == 422
        sent = 'ledger_notifier_digests_total{outcome="sent"} 1.0'
        eventually(lambda: sent in client.get("/metrics").text)
        time.sleep(INTERVAL_SECONDS * 4)
    assert len(bodies) == 1
