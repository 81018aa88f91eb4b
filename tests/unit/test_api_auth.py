from __future__ import annotations

import pytest
from starlette.requests import Request

from service.api.auth import ApiAuthorizer
from service.api.errors import ApiError


def request_from(host: str, authorization: str | None = None) -> Request:
    headers = [(b"authorization", authorization.encode())] if authorization else []
    return Request({"type": "http", "client": (host, 50000), "headers": headers})


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
