"""Digests are signed exactly as the Standard Webhooks specification's own example is."""

from __future__ import annotations

import pytest

from service.alerting.standard_webhooks import signed_headers
from service.settings import standard_webhooks_key

# The example of the specification (standardwebhooks.com, "Signature scheme"), which its
# libraries test against.
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MESSAGE_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_specifications_example_is_signed_as_it_publishes() -> None:
    headers = signed_headers(standard_webhooks_key(SECRET), MESSAGE_ID, TIMESTAMP, BODY)
    assert headers["webhook-signature"] == SIGNATURE
    assert (headers["webhook-id"], headers["webhook-timestamp"]) == (MESSAGE_ID, str(TIMESTAMP))


def test_another_body_or_time_signs_differently() -> None:
    key = standard_webhooks_key(SECRET)
    assert signed_headers(key, MESSAGE_ID, TIMESTAMP, b"{}")["webhook-signature"] != SIGNATURE
    later = signed_headers(key, MESSAGE_ID, TIMESTAMP + 1, BODY)["webhook-signature"]
    assert later != SIGNATURE


@pytest.mark.parametrize(
    "secret",
    ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not*base64", "whsec_c2hvcnQ=", ""],
)
def test_a_secret_that_is_not_whsec_and_24_to_64_bytes_is_refused(secret: str) -> None:
    with pytest.raises(ValueError, match="whsec_ and the base64 of 24 to 64 bytes"):
        standard_webhooks_key(secret)
