"""Console sign-in over a real socket, on both engines: the cookie names a server-side session
(never the token) that ends at sign-out, at expiry and when its token is removed; sign-in
takes only this origin's forms; wrong tokens are counted and throttled per client address."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, update

from service.app import create_app
from service.fronts.console.access import SESSION_COOKIE
from service.settings import load_settings, resolve_database_url
from service.store.database import create_engine
from service.store.schema import console_sessions
from tests.support.server import serving
from tests.support.webhooks import WEBHOOK_KEYS_SETTING

READ_TOKEN = "console-read-token-0123456789"
OPERATOR_TOKEN = "console-operator-token-0123456789"
WRONG_TOKEN = "not-a-configured-token-0123456789"
FAILURES_MAX = 3
SECOND_CLIENT_ADDRESS = "127.0.0.2"  # another loopback address: another client


@contextmanager
def console(
    database_url: str,
    tokens: str = f"{READ_TOKEN},operator:{OPERATOR_TOKEN}",
    local_address: str | None = None,
) -> Iterator[httpx.Client]:
    settings = load_settings(
        database_url=database_url,
        webhook_keys=WEBHOOK_KEYS_SETTING,
        api_tokens=tokens,
        auth_failures_max=FAILURES_MAX,
        projector_enabled=False,
    )
    with serving(create_app(settings)) as base_url, client_of(base_url, local_address) as client:
        yield client


@contextmanager
def client_of(base_url: str, local_address: str | None = None) -> Iterator[httpx.Client]:
    transport = httpx.HTTPTransport(local_address=local_address) if local_address else None
    with httpx.Client(base_url=base_url, timeout=30, transport=transport) as client:
        yield client


def origin(client: httpx.Client) -> str:
    return str(client.base_url).rstrip("/")


def sign_in(client: httpx.Client, token: str, **headers: str) -> httpx.Response:
    answer = client.post(
        "/console/login",
        data={"token": token, "next": "/console/deliveries"},
        headers={"Origin": origin(client), "Sec-Fetch-Site": "same-origin", **headers},
    )
    client.cookies.clear()  # each test names the session it sends
    return answer


def session_of(answer: httpx.Response) -> str:
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/console/deliveries"
    [cookie] = [c for c in answer.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE)]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    assert value
    return value


def page(client: httpx.Client, session: str, path: str = "/console/deliveries") -> httpx.Response:
    return client.get(path, headers={"Cookie": f"{SESSION_COOKIE}={session}"})


def sent_to_sign_in(answer: httpx.Response) -> bool:
    return answer.status_code == 303 and answer.headers["location"].startswith("/console/login")


def form_token(answer: httpx.Response) -> str:
    [token] = re.findall(r'name="formToken" value="([0-9a-f]+)"', answer.text)
    return str(token)


def sign_out(client: httpx.Client, session: str, token: str) -> httpx.Response:
    return client.post(
        "/console/logout",
        data={"formToken": token},
        headers={"Cookie": f"{SESSION_COOKIE}={session}", "Origin": origin(client)},
    )


def in_database(database_url: str, work: Any) -> Any:
    async def run() -> Any:
        engine = create_engine(resolve_database_url(database_url))
        try:
            async with engine.begin() as connection:
                return await work(connection)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def session_rows(database_url: str) -> int:
    async def count(connection: Any) -> int:
        return int(await connection.scalar(select(func.count()).select_from(console_sessions)))

    return int(in_database(database_url, count))


def auth_failures(client: httpx.Client, surface: str) -> float:
    exposition = client.get("/metrics").text
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == "ledger_auth_failures_total" and sample.labels == {
                "surface": surface
            }:
                return sample.value
    raise AssertionError(f"no ledger_auth_failures_total{{surface={surface!r}}}")


def test_the_session_cookie_is_not_the_token_and_opens_nothing_on_v1(database_url: str) -> None:
    with console(database_url) as client:
        answer = sign_in(client, OPERATOR_TOKEN)
        session = session_of(answer)
        assert OPERATOR_TOKEN not in answer.headers.get("set-cookie", "")
        assert session != OPERATOR_TOKEN
        assert page(client, session).status_code == 200
        # Neither as a bearer token nor as a cookie does the session open /v1.
        as_bearer = client.get("/v1/invoices", headers={"Authorization": f"Bearer {session}"})
        as_cookie = client.get("/v1/invoices", headers={"Cookie": f"{SESSION_COOKIE}={session}"})
        assert (as_bearer.status_code, as_cookie.status_code) == (401, 401)

    async def stored(connection: Any) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in await connection.execute(select(console_sessions))]

    [row] = in_database(database_url, stored)
    assert session not in row and OPERATOR_TOKEN not in row
    assert row[1].startswith("token:") and row[2] == "operator"


def test_signing_out_ends_the_session_so_the_replayed_cookie_is_sent_to_sign_in(
    database_url: str,
) -> None:
    with console(database_url) as client:
        session = session_of(sign_in(client, READ_TOKEN))
        shown = page(client, session)
        assert shown.status_code == 200
        signed_out = sign_out(client, session, form_token(shown))
        assert (signed_out.status_code, signed_out.headers["location"]) == (303, "/console/login")
        assert sent_to_sign_in(page(client, session))
        assert sent_to_sign_in(page(client, session, "/console"))


def test_an_expired_session_is_sent_to_sign_in(database_url: str) -> None:
    with console(database_url) as client:
        session = session_of(sign_in(client, READ_TOKEN))
        assert page(client, session).status_code == 200

        async def expire(connection: Any) -> None:
            past = datetime.now(UTC) - timedelta(seconds=1)
            await connection.execute(update(console_sessions).values(expires_at=past))

        in_database(database_url, expire)
        assert sent_to_sign_in(page(client, session))
        # The next sign-in deletes the expired row.
        session_of(sign_in(client, READ_TOKEN))
    assert session_rows(database_url) == 1


def test_a_session_ends_when_its_token_is_removed_from_the_configuration(
    database_url: str,
) -> None:
    with console(database_url) as client:
        read_session = session_of(sign_in(client, READ_TOKEN))
        operator_session = session_of(sign_in(client, OPERATOR_TOKEN))
    with console(database_url, tokens=f"operator:{OPERATOR_TOKEN}") as client:
        assert sent_to_sign_in(page(client, read_session))
        assert page(client, operator_session).status_code == 200


def test_signing_in_again_ends_the_session_the_browser_held(database_url: str) -> None:
    with console(database_url) as client:
        first = session_of(sign_in(client, READ_TOKEN))
        second = session_of(sign_in(client, READ_TOKEN, Cookie=f"{SESSION_COOKIE}={first}"))
        assert sent_to_sign_in(page(client, first))
        assert page(client, second).status_code == 200


def test_a_form_token_of_one_session_is_refused_under_another(database_url: str) -> None:
    with console(database_url) as client:
        first = session_of(sign_in(client, READ_TOKEN))
        second = session_of(sign_in(client, READ_TOKEN))
        refused = sign_out(client, second, form_token(page(client, first)))
        assert refused.status_code == 403
        assert page(client, second).status_code == 200  # still signed in


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
def test_a_cross_origin_sign_in_is_refused_and_opens_no_session(
    database_url: str, headers: dict[str, str]
) -> None:
    with console(database_url) as client:
        answer = sign_in(client, OPERATOR_TOKEN, **headers)
        assert answer.status_code == 403, answer.text
        assert "set-cookie" not in answer.headers
    assert session_rows(database_url) == 0


@pytest.mark.parametrize("surface", ["api", "console", "console_sign_in"])
def test_repeated_wrong_tokens_get_429_with_retry_after_and_are_counted_but_not_for_another_address(
    database_url: str, surface: str
) -> None:
    def attempt(client: httpx.Client, token: str) -> httpx.Response:
        if surface == "console_sign_in":
            return sign_in(client, token)
        path = "/v1/invoices" if surface == "api" else "/console/invoices"
        return client.get(path, headers={"Authorization": f"Bearer {token}"})

    def refused(answer: httpx.Response) -> bool:
        # A console page sends a browser to sign in where /v1 and the form answer 401.
        return answer.status_code == 401 or sent_to_sign_in(answer)

    with console(database_url) as client:
        for _ in range(FAILURES_MAX):
            assert refused(attempt(client, WRONG_TOKEN))
        assert auth_failures(client, surface) == FAILURES_MAX
        throttled = attempt(client, WRONG_TOKEN)
        assert throttled.status_code == 429, throttled.text
        assert 0 < int(throttled.headers["retry-after"]) <= 300
        # Throttled, even the right token is not looked at: the answer says nothing of it.
        assert attempt(client, OPERATOR_TOKEN).status_code == 429
        assert auth_failures(client, surface) == FAILURES_MAX
        with client_of(origin(client), SECOND_CLIENT_ADDRESS) as other:
            admitted = attempt(other, OPERATOR_TOKEN)
            assert admitted.status_code in (200, 303) and not sent_to_sign_in(admitted)
            assert refused(attempt(other, WRONG_TOKEN))
    if surface == "console_sign_in":
        assert session_rows(database_url) == 1  # the other address's


def test_successful_token_checks_are_never_counted_nor_throttled(database_url: str) -> None:
    with console(database_url) as client:
        for _ in range(FAILURES_MAX * 3):
            answer = client.get("/v1/invoices", headers={"Authorization": f"Bearer {READ_TOKEN}"})
            assert answer.status_code == 200
        assert auth_failures(client, "api") == 0


def test_without_tokens_the_loopback_console_needs_no_sign_in(database_url: str) -> None:
    settings = load_settings(database_url=database_url, webhook_keys=WEBHOOK_KEYS_SETTING)
    with serving(create_app(settings)) as base_url, client_of(base_url) as client:
        answer = client.get("/console/login", params={"next": "/console/invoices"})
        assert (answer.status_code, answer.headers["location"]) == (303, "/console/invoices")
        assert client.get("/console/invoices").status_code == 200
    assert session_rows(database_url) == 0
