"""While the database is away, deliveries get 503 so Cybersource retries.

Nothing that was acknowledged is lost, and the refused deliveries are recorded once retried.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy.engine import make_url

from service.app import create_app
from service.settings import load_settings
from tests.support.ledger_store import read_ledger
from tests.support.proxy import outage_proxy
from tests.support.server import serving
from tests.support.webhooks import (
    WEBHOOK_KEYS_SETTING,
    WEBHOOK_PATH,
    encode,
    invoice_notification,
    signed_headers,
)


@dataclass
class Outage:
    service_database_url: str
    begin: Callable[[], None]
    end: Callable[[], None]


@contextmanager
def postgresql_outage(database_url: str) -> Iterator[Outage]:
    """The service reaches PostgreSQL through a proxy that the test can cut."""
    url = make_url(database_url)
    with outage_proxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        proxied = url.set(port=proxy.port).render_as_string(hide_password=False)
        yield Outage(proxied, proxy.cut, proxy.restore)


@contextmanager
def sqlite_outage(database_url: str) -> Iterator[Outage]:
    """Another process holds SQLite's exclusive lock for longer than the service will wait."""
    path = make_url(database_url).database
    holder = sqlite3.connect(path, isolation_level=None)

    def begin() -> None:
        holder.execute("BEGIN EXCLUSIVE")

    def end() -> None:
        holder.execute("ROLLBACK")

    try:
        yield Outage(database_url, begin, end)
    finally:
        holder.close()


@contextmanager
def service_behind(outage: Outage) -> Iterator[httpx.Client]:
    """The service, reaching its database only through the outage's control."""
    settings = load_settings(
        database_url=outage.service_database_url, webhook_keys=WEBHOOK_KEYS_SETTING
    )
    with (
        serving(create_app(settings)) as base_url,
        httpx.Client(base_url=base_url, timeout=30) as client,
    ):
        yield client


def deliver(client: httpx.Client, body: bytes) -> httpx.Response:
    return client.post(WEBHOOK_PATH, content=body, headers=signed_headers(body))


def test_deliveries_during_an_outage_get_503_and_their_retries_are_recorded_once(
    database_url: str,
) -> None:
    during_outage_count = 3 if database_url.startswith("postgresql") else 2
    outage_for = postgresql_outage if database_url.startswith("postgresql") else sqlite_outage
    before = [encode(invoice_notification(f"INV-B{i}", notification_id=f"b{i}")) for i in range(3)]
    during = [
        encode(invoice_notification(f"INV-D{i}", notification_id=f"d{i}"))
        for i in range(during_outage_count)
    ]
    with outage_for(database_url) as outage, service_behind(outage) as client:
        assert [deliver(client, body).json()["status"] for body in before] == ["accepted"] * 3

        outage.begin()
        refused = [deliver(client, body) for body in during]
        assert [response.status_code for response in refused] == [503] * len(during)
        assert all(response.headers["Retry-After"].isdigit() for response in refused)
        assert refused[0].json()["error"] == "store_unavailable"
        outage.end()

        # Cybersource retries what was refused, and may resend what was acknowledged.
        assert [deliver(client, body).json()["status"] for body in during] == ["accepted"] * len(
            during
        )
        assert [deliver(client, body).json()["status"] for body in before] == ["duplicate"] * 3
        metrics = client.get("/metrics").text
        assert f"ledger_webhook_store_unavailable_total {float(len(during))}" in metrics

    events, _ = asyncio.run(read_ledger(database_url))
    recorded = sorted(event.data["notification"]["id"] for event in events)
    assert recorded == sorted([f"b{i}" for i in range(3)] + [f"d{i}" for i in range(len(during))])


@pytest.mark.postgresql
def test_readiness_fails_while_postgresql_is_unreachable(postgresql_database_url: str) -> None:
    with postgresql_outage(postgresql_database_url) as outage, service_behind(outage) as client:
        assert client.get("/readyz").status_code == 200
        outage.begin()
        unready = client.get("/readyz")
        outage.end()
        assert unready.status_code == 503
        [problem] = unready.json()["problems"]
        assert problem.startswith("database unavailable: ")
        assert client.get("/readyz").status_code == 200


@pytest.mark.postgresql
# The outage severs the projector's connection mid-query; asyncpg's transport for it may be
# collected before the pool discards it, which Python reports as an unclosed transport.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_the_projector_waits_out_an_outage_and_resumes(postgresql_database_url: str) -> None:
    body = encode(invoice_notification("INV-AFTER", notification_id="after"))
    with postgresql_outage(postgresql_database_url) as outage, service_behind(outage) as client:
        outage.begin()
        time.sleep(3)  # longer than the projector's poll: it meets the outage
        outage.end()
        assert deliver(client, body).json()["status"] == "accepted"
        answer = client.get("/v1/invoices/INV-AFTER", params={"minPosition": 1})
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "SENT"
        assert client.get("/readyz").json() == {"status": "ready"}


@pytest.mark.postgresql
def test_a_postgresql_that_cannot_accept_connections_now_gets_503_not_500(
    postgresql_database_url: str,
) -> None:
    """57P03 (starting up, shutting down) at pool checkout is an outage like any other."""
    url = make_url(postgresql_database_url)
    body = encode(invoice_notification("INV-57P03", notification_id="starting-up"))
    with outage_proxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        settings = load_settings(
            database_url=url.set(port=proxy.port).render_as_string(hide_password=False),
            webhook_keys=WEBHOOK_KEYS_SETTING,
        )
        with (
            serving(create_app(settings)) as base_url,
            httpx.Client(base_url=base_url, timeout=30) as client,
        ):
            assert client.get("/readyz").status_code == 200
            proxy.answer_cannot_connect_now()
            refused = deliver(client, body)
            unready = client.get("/readyz")
            proxy.relay_again()
            assert (refused.status_code, refused.json()["error"]) == (503, "store_unavailable")
            assert refused.headers["Retry-After"].isdigit()
            [problem] = unready.json()["problems"]
            assert unready.status_code == 503
            # The server's own reason when a new connection is refused; a pooled connection
            # the proxy severed meanwhile says only its type.
            assert problem in (
                "database unavailable: the database system is starting up",
                "database unavailable: InterfaceError",
            ), problem
            assert deliver(client, body).json() == {"status": "accepted"}
