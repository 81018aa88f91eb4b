from __future__ import annotations

import pytest
from starlette.requests import Request

from service.fronts.auth import ApiAuthorizer, Scope
from service.fronts.errors import ApiError


def request_from(host: str, authorization: str | None = None) -> Request:
    """A GET /v1/invoices from ``host`` to a server on 127.0.0.1:8000, named so in Host."""
    headers = [(b"host", b"127.0.0.1:8000")]
    headers += [(b"authorization", authorization.encode())] if authorization else []
    return Request({
        "type": "http", "method": "GET", "scheme": "http", "path": "/v1/invoices",
        "query_string": b"", "server": ("127.0.0.1", 8000), "client": (host, 50000),
        "headers": headers,
    })  # fmt: skip


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1"])
def test_without_tokens_loopback_clients_may_read(host: str) -> None:
    ApiAuthorizer(()).check(request_from(host))


@pytest.mark.parametrize("host", ["10.0.0.7", "192.168.1.2", "2001:db8::1", "testclient"])
def test_without_tokens_other_clients_are_refused(host: str) -> None:
    with pytest.raises(ApiError) as refused:
        ApiAuthorizer(()).check(request_from(host))
    assert refused.value.status_code == 401


def test_with_tokens_any_configured_token_admits_from_anywhere() -> None:
    authorizer = ApiAuthorizer(("first-token-0123456789", "second-token-0123456789"))
    authorizer.check(request_from("10.0.0.7", "Bearer second-token-0123456789"))
    authorizer.check(request_from("10.0.0.7", "bearer first-token-0123456789"))
    with pytest.raises(ApiError):
        authorizer.check(request_from("127.0.0.1"))  # tokens configured: loopback needs one too


def test_a_read_token_reads_but_is_refused_an_operator_action_with_403() -> None:
    authorizer = ApiAuthorizer(("read-token-0123456789",), ("operator-token-0123456789",))
    caller = authorizer.check(request_from("10.0.0.7", "Bearer read-token-0123456789"))
    assert caller.scope is Scope.READ
    with pytest.raises(ApiError) as refused:
        authorizer.check(request_from("10.0.0.7", "Bearer read-token-0123456789"), Scope.OPERATOR)
    assert (refused.value.status_code, refused.value.error) == (403, "insufficient_scope")


def test_an_operator_token_may_read_and_act_and_is_named_without_revealing_it() -> None:
    authorizer = ApiAuthorizer(("read-token-0123456789",), ("operator-token-0123456789",))
    request = request_from("10.0.0.7", "Bearer operator-token-0123456789")
    assert authorizer.check(request).scope is Scope.OPERATOR
    caller = authorizer.check(request, Scope.OPERATOR)
    assert caller.name.startswith("token:")
    assert "operator-token" not in caller.name


def test_without_tokens_a_loopback_client_has_the_operator_scope() -> None:
    caller = ApiAuthorizer(()).check(request_from("127.0.0.1"), Scope.OPERATOR)
    assert caller.is_operator and caller.name == "loopback"


@pytest.mark.parametrize(
    "header",
    [b"x-forwarded-for", b"forwarded", b"x-real-ip", b"via", b"x-envoy-external-address"],
)
def test_without_tokens_a_loopback_peer_that_relays_a_proxied_request_is_refused(
    header: bytes,
) -> None:
    proxied = Request(
        {"type": "http", "client": ("127.0.0.1", 50000), "headers": [(header, b"203.0.113.9")]}
    )
    with pytest.raises(ApiError) as refused:
        ApiAuthorizer(()).check(proxied)
    assert refused.value.status_code == 401


def test_anonymous_access_admits_every_client_only_when_explicitly_allowed() -> None:
    ApiAuthorizer((), allow_anonymous=True).check(request_from("10.0.0.7"))
    with pytest.raises(ApiError):
        # Tokens configured: the opt-out changes nothing.
        ApiAuthorizer(("first-token-0123456789",), allow_anonymous=True).check(
            request_from("10.0.0.7")
        )


def test_anonymous_access_reads_but_never_holds_the_operator_scope() -> None:
    authorizer = ApiAuthorizer((), allow_anonymous=True)
    assert authorizer.check(request_from("10.0.0.7")).scope is Scope.READ
    with pytest.raises(ApiError) as refused:
        authorizer.check(request_from("10.0.0.7"), Scope.OPERATOR)
    assert (refused.value.status_code, refused.value.error) == (403, "insufficient_scope")
