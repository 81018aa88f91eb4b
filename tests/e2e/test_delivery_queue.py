"""The deliveries that wait for an operator, over a real socket, on both engines: dead letters
until replayed into facts, conflicts until corrected, either until resolved with a reason;
the count the metrics sample; the same queue and resolution from the command line."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from service.settings import resolve_database_url
from service.store.database import create_engine
from service.store.delivery_queue import deliveries_waiting
from tests.support.cli import invoice_ledger
from tests.support.delivery_log import (
    OPERATOR,
    READ,
    ledger,
    post_delivery,
    two_invoice_notification,
)
from tests.support.webhooks import encode, invoice_notification


@pytest.fixture
def api(database_url: str) -> Iterator[httpx.Client]:
    with ledger(database_url, webhook_items_max=1) as client:
        yield client


def waiting(api: httpx.Client) -> list[int]:
    response = api.get("/v1/deliveries", params={"waiting": "true"}, headers=READ)
    assert response.status_code == 200, response.text
    return [item["deliveryId"] for item in response.json()["items"]]


def resolve(api: httpx.Client, delivery_id: int, reason: str = "entered by hand") -> Any:
    return api.post(
        f"/v1/deliveries/{delivery_id}/resolution", json={"reason": reason}, headers=OPERATOR
    )


def newest(api: httpx.Client, outcome: str) -> int:
    response = api.get("/v1/deliveries", params={"outcome": outcome}, headers=READ)
    return int(response.json()["items"][0]["deliveryId"])


async def counted(database_url: str) -> dict[str, int]:
    engine = create_engine(resolve_database_url(database_url))
    try:
        return await deliveries_waiting(engine)
    finally:
        await engine.dispose()


def make_conflict(api: httpx.Client, notification_id: str) -> int:
    for balance in ("100.00", "80.00"):
        body = encode(
            invoice_notification("INV-Q", notification_id=notification_id, balance=balance)
        )
        assert post_delivery(api, body).status_code == 200
    return newest(api, "conflict")


def test_a_dead_letter_and_a_conflict_wait_until_resolved_and_the_resolution_stays(
    api: httpx.Client, database_url: str
) -> None:
    assert post_delivery(api, two_invoice_notification("n-dead")).status_code == 422
    dead_letter = newest(api, "rejected")
    conflict = make_conflict(api, "n-twice")
    accepted = newest(api, "accepted")
    assert sorted(waiting(api)) == sorted([dead_letter, conflict])
    assert asyncio.run(counted(database_url)) == {"dead_letter": 1, "conflict": 1}

    answer = resolve(api, conflict, "  the first version stands: Cybersource confirmed it ")
    assert answer.status_code == 200, answer.text
    assert answer.json()["reason"] == "the first version stands: Cybersource confirmed it"
    assert answer.json()["resolvedBy"].startswith("token:")
    assert waiting(api) == [dead_letter]
    assert asyncio.run(counted(database_url)) == {"dead_letter": 1, "conflict": 0}
    shown = api.get(f"/v1/deliveries/{conflict}", headers=READ).json()
    assert shown["outcome"] == "conflict"  # how it arrived is never rewritten
    assert shown["resolution"]["reason"] == "the first version stands: Cybersource confirmed it"

    again = resolve(api, conflict, "another reason")
    assert (again.status_code, again.json()["error"]) == (409, "already_resolved")
    shown = api.get(f"/v1/deliveries/{conflict}", headers=READ).json()
    assert shown["resolution"]["reason"] == "the first version stands: Cybersource confirmed it"

    not_waiting = resolve(api, accepted)
    assert (not_waiting.status_code, not_waiting.json()["error"]) == (409, "not_waiting")
    assert resolve(api, 10**9).status_code == 404
    blank = resolve(api, dead_letter, "   ")
    assert (blank.status_code, blank.json()["error"]) == (400, "bad_reason")
    as_reader = api.post(
        f"/v1/deliveries/{dead_letter}/resolution", json={"reason": "x"}, headers=READ
    )
    assert as_reader.status_code == 403
    assert waiting(api) == [dead_letter]


def test_a_dead_letter_replayed_into_facts_and_a_corrected_conflict_stop_waiting(
    database_url: str,
) -> None:
    with ledger(database_url, webhook_items_max=1) as strict:
        assert post_delivery(strict, two_invoice_notification("n-later")).status_code == 422
        dead_letter = newest(strict, "rejected")
        still = strict.post(f"/v1/deliveries/{dead_letter}/replay", headers=OPERATOR).json()
        assert still["result"] == "unreadable"
        assert waiting(strict) == [dead_letter]  # a replay that still fails changes nothing
        conflict = make_conflict(strict, "n-corrected")
    with ledger(database_url, webhook_items_max=10) as relaxed:
        replayed = relaxed.post(f"/v1/deliveries/{dead_letter}/replay", headers=OPERATOR)
        assert replayed.json()["result"] == "appended"
        assert waiting(relaxed) == [conflict]
        corrected = relaxed.post(
            f"/v1/deliveries/{conflict}/corrections",
            json={"reason": "the second version is right"},
            headers=OPERATOR,
        )
        assert corrected.status_code == 200, corrected.text
        assert waiting(relaxed) == []
        answer = resolve(relaxed, conflict)
        assert (answer.status_code, answer.json()["error"]) == (409, "not_waiting")


def test_the_command_line_lists_the_queue_and_resolves_once(
    api: httpx.Client, database_url: str
) -> None:
    conflict = make_conflict(api, "n-cli")
    environment = {"LEDGER_DATABASE_URL": database_url}
    listed = invoice_ledger("deliveries", "list", "--waiting", "--json", environment=environment)
    assert listed.returncode == 0, listed.stderr
    assert [item["deliveryId"] for item in json.loads(listed.stdout)["items"]] == [conflict]
    resolved = invoice_ledger(
        "deliveries", "resolve", str(conflict), "--reason", "refunded outside",
        environment=environment,
    )  # fmt: skip
    assert resolved.returncode == 0, resolved.stderr
    assert f"delivery {conflict}: resolved by cli:" in resolved.stdout.decode()
    twice = invoice_ledger(
        "deliveries", "resolve", str(conflict), "--reason", "again", environment=environment
    )
    assert twice.returncode == 1
    assert b"already_resolved" in twice.stderr
    assert waiting(api) == []
