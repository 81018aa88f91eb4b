"""One portfolio key, several organizations: each call is made and signed for the organization
it is about, and what the reconciler records names that organization. Over real sockets; the
Cybersource on the other end checks every HTTP Signature."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from decimal import Decimal

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from service.domain.identity import UNKNOWN_ORGANIZATION, InvoiceKey, invoices_in_stream
from service.domain.invoice import InvoiceState, fold
from service.reconciler.answers import CallFailure, CybersourceError
from service.reconciler.client import CybersourceClient
from service.reconciler.reconciler import OrganizationNotChosen, Reconciler
from service.reconciler.worker import ReconcilerWorker
from service.store.events.base import EventStore
from service.store.events.for_engine import event_store_for
from service.store.views.read_model_store import SqlReadModelStore
from tests.support.cybersource_sandbox import FAST, PORTFOLIO
from tests.support.organizations_cybersource import OrganizationsCybersource, RecordedCall
from tests.support.server import serving

pytestmark = pytest.mark.anyio

CHILDREN = PORTFOLIO.organization_ids


@pytest.fixture
def cybersource() -> Iterator[tuple[OrganizationsCybersource, str]]:
    fake = OrganizationsCybersource([PORTFOLIO])
    with serving(fake.app()) as url:
        yield fake, url


@pytest.fixture
async def client(
    cybersource: tuple[OrganizationsCybersource, str],
) -> AsyncIterator[CybersourceClient]:
    async with CybersourceClient(cybersource[1], PORTFOLIO, FAST) as portfolio_client:
        yield portfolio_client


async def ledger_state(store: EventStore, key: InvoiceKey) -> InvoiceState:
    stream = await store.read_stream(key.invoice_number)
    return fold(
        key.invoice_number, invoices_in_stream(key.invoice_number, stream)[key], key.organization_id
    )


async def test_each_call_names_the_organization_it_is_made_for(
    cybersource: tuple[OrganizationsCybersource, str], client: CybersourceClient
) -> None:
    fake, _ = cybersource
    fake.add_invoice("ledgerchild1", "1001", "SENT", "10.00")
    fake.add_invoice("ledgerchild2", "1001", "PAID", "20.00")
    first = await client.get_invoice("1001", organization_id="ledgerchild1")
    second = await client.get_invoice("1001", organization_id="ledgerchild2")
    assert (first["status"], second["status"]) == ("SENT", "PAID")
    listed = [i["id"] async for i in client.iterate_invoices(organization_id="ledgerchild2")]
    assert listed == ["1001"]
    assert [call.organization_id for call in fake.calls] == [
        "ledgerchild1",
        "ledgerchild2",
        "ledgerchild2",
    ]


async def test_a_call_without_an_organization_is_made_for_the_keys_own_merchant(
    cybersource: tuple[OrganizationsCybersource, str], client: CybersourceClient
) -> None:
    fake, _ = cybersource
    with pytest.raises(CybersourceError, match="HTTP 404"):
        await client.get_invoice("1001")
    assert fake.calls == [RecordedCall("ledgerportfolio", "GET", "/invoicing/v2/invoices/1001")]


async def test_an_organization_the_key_may_not_act_for_is_refused_before_any_request(
    client: CybersourceClient,
) -> None:
    with pytest.raises(
        CybersourceError, match="does not act for organization 'stranger'"
    ) as raised:
        await client.get_invoice("1001", organization_id="stranger")
    assert raised.value.failure is CallFailure.ORGANIZATION_NOT_PERMITTED
    assert client.requests_sent == 0


def new_organization_invoice(sandbox_url: str, organization: str, number: str, total: str) -> None:
    httpx.post(
        f"{sandbox_url}/sandbox/invoices",
        params={"organizationId": organization},
        json={"invoiceNumber": number, "totalAmount": total, "dueDate": "2026-12-31"},
    ).raise_for_status()


async def test_the_sandbox_serves_each_child_its_own_invoices_to_the_portfolio_key() -> None:
    from service.sandbox.app import create_sandbox_app

    with serving(create_sandbox_app([PORTFOLIO])) as sandbox_url:
        new_organization_invoice(sandbox_url, "ledgerchild1", "P-1", "10.00")
        new_organization_invoice(sandbox_url, "ledgerchild2", "P-1", "20.00")
        async with CybersourceClient(sandbox_url, PORTFOLIO, FAST) as client:
            totals = [
                (await client.get_invoice("P-1", organization))["orderInformation"][
                    "amountDetails"
                ]["totalAmount"]
                for organization in CHILDREN
            ]
            listed = [i["id"] async for i in client.iterate_invoices(organization_id=CHILDREN[1])]
    assert [Decimal(str(total)) for total in totals] == [Decimal("10.00"), Decimal("20.00")]
    assert listed == ["P-1"]


async def test_a_sweep_covers_every_organization_open_statuses_first(
    cybersource: tuple[OrganizationsCybersource, str],
    client: CybersourceClient,
    engine: AsyncEngine,
) -> None:
    fake, _ = cybersource
    fake.add_invoice("ledgerchild1", "1001", "SENT", "10.00")
    fake.add_invoice("ledgerchild2", "1001", "SENT", "20.00")
    fake.add_invoice("ledgerchild2", "1002", "PAID", "5.00")
    store = event_store_for(engine)
    summary = await Reconciler(client, store, CHILDREN).sweep(statuses=("SENT", "PAID"))

    assert (summary.checked, summary.changed, summary.failed) == (3, 3, 0)
    assert {name: counts.checked for name, counts in summary.by_organization.items()} == {
        "ledgerchild1": 1,
        "ledgerchild2": 2,
    }
    listings = [
        (call.organization_id, call.path_and_query.rsplit("status=", 1)[1])
        for call in fake.calls
        if "status=" in call.path_and_query
    ]
    assert listings == [
        ("ledgerchild1", "SENT"),
        ("ledgerchild2", "SENT"),
        ("ledgerchild1", "PAID"),
        ("ledgerchild2", "PAID"),
    ]
    # One invoice number, two organizations, two invoices in the ledger.
    first = await ledger_state(store, InvoiceKey("ledgerchild1", "1001"))
    second = await ledger_state(store, InvoiceKey("ledgerchild2", "1001"))
    assert (first.total_amount, second.total_amount) == (Decimal("10.00"), Decimal("20.00"))


async def test_a_sweep_can_be_restricted_to_some_organizations(
    cybersource: tuple[OrganizationsCybersource, str],
    client: CybersourceClient,
    engine: AsyncEngine,
) -> None:
    fake, _ = cybersource
    fake.add_invoice("ledgerchild1", "1001", "SENT", "10.00")
    fake.add_invoice("ledgerchild2", "2001", "SENT", "20.00")
    reconciler = Reconciler(client, event_store_for(engine), CHILDREN)
    summary = await reconciler.sweep(statuses=("SENT",), organizations=["ledgerchild2"])
    assert summary.checked == 1 and list(summary.by_organization) == ["ledgerchild2"]
    assert {call.organization_id for call in fake.calls} == {"ledgerchild2"}


async def test_reconciling_one_invoice_needs_its_organization_when_several_are_configured(
    cybersource: tuple[OrganizationsCybersource, str],
    client: CybersourceClient,
    engine: AsyncEngine,
) -> None:
    fake, _ = cybersource
    fake.add_invoice("ledgerchild2", "1001", "SENT", "20.00")
    store = event_store_for(engine)
    reconciler = Reconciler(client, store, CHILDREN)
    with pytest.raises(OrganizationNotChosen, match="2 organizations are configured"):
        await reconciler.reconcile_invoice("1001")
    with pytest.raises(OrganizationNotChosen, match="'stranger' is not configured"):
        await reconciler.reconcile_invoice("1001", "stranger")

    outcome = await reconciler.reconcile_invoice("1001", "ledgerchild2")
    assert (outcome.organization_id, outcome.error) == ("ledgerchild2", None)
    assert (await ledger_state(store, InvoiceKey("ledgerchild2", "1001"))).status == "SENT"

    missing = await reconciler.reconcile_invoice("1001", "ledgerchild1")
    assert missing.invoice == "ledgerchild1/1001" and "HTTP 404" in (missing.error or "")


class Doubts:
    """The read model's answer, as the worker reads it: doubtful invoices by key."""

    def __init__(self, keys: list[InvoiceKey]) -> None:
        self.keys = keys

    async def doubtful_invoices(
        self, now: datetime, quiet_since: datetime, limit: int
    ) -> list[InvoiceKey]:
        return self.keys[:limit]


def doubting_worker(
    client: CybersourceClient, engine: AsyncEngine, doubts: list[InvoiceKey]
) -> ReconcilerWorker:
    return ReconcilerWorker(
        Reconciler(client, event_store_for(engine), CHILDREN),
        Doubts(doubts),
        SqlReadModelStore(engine),
        owner="test",
        sweep_interval_seconds=3600,
        first_sweep_delay_seconds=3600,  # these tests are about the doubts alone
    )


async def test_the_worker_fetches_each_doubt_for_its_organization_once_an_hour(
    cybersource: tuple[OrganizationsCybersource, str],
    client: CybersourceClient,
    engine: AsyncEngine,
) -> None:
    fake, _ = cybersource
    fake.add_invoice("ledgerchild1", "1001", "SENT", "10.00")
    fake.add_invoice("ledgerchild2", "1001", "SENT", "20.00")
    doubts = [InvoiceKey("ledgerchild1", "1001"), InvoiceKey("ledgerchild2", "1001")]
    worker = doubting_worker(client, engine, doubts)
    await worker.round()
    details = [call for call in fake.calls if call.path_and_query.endswith("/1001")]
    assert [call.organization_id for call in details] == ["ledgerchild1", "ledgerchild2"]

    # The same number in the same organizations, doubted again within the hour: not fetched.
    fake.calls.clear()
    await worker.round()
    assert fake.calls == []


async def test_the_worker_leaves_doubts_of_unknown_or_foreign_organizations_to_the_sweep(
    cybersource: tuple[OrganizationsCybersource, str],
    client: CybersourceClient,
    engine: AsyncEngine,
) -> None:
    fake, _ = cybersource
    fake.add_invoice("ledgerchild1", "1001", "SENT", "10.00")
    doubts = [InvoiceKey(UNKNOWN_ORGANIZATION, "1001"), InvoiceKey("stranger", "1001")]
    worker = doubting_worker(client, engine, doubts)
    await worker.round()
    assert fake.calls == []


async def test_with_one_organization_a_doubt_of_unknown_organization_is_fetched_for_it(
    cybersource: tuple[OrganizationsCybersource, str], engine: AsyncEngine
) -> None:
    fake, url = cybersource
    fake.add_invoice("ledgerchild1", "1001", "SENT", "10.00")
    async with CybersourceClient(url, PORTFOLIO, FAST) as client:
        worker = ReconcilerWorker(
            Reconciler(client, event_store_for(engine), ["ledgerchild1"]),
            Doubts([InvoiceKey(UNKNOWN_ORGANIZATION, "1001")]),
            SqlReadModelStore(engine),
            owner="test",
            sweep_interval_seconds=3600,
            first_sweep_delay_seconds=3600,
        )
        await worker.round()
    assert [call.organization_id for call in fake.calls] == ["ledgerchild1"]
    store = event_store_for(engine)
    status = (await ledger_state(store, InvoiceKey("ledgerchild1", "1001"))).status
    assert status == "SENT"
