from __future__ import annotations

import pytest

from service.webhooks import javascript_json


@pytest.mark.parametrize(
    ("text", "javascript"),
    [
        # Each right-hand side is what JSON.stringify(JSON.parse(text)) prints in JavaScript.
        ("1.0", "1"),
        ("102.50", "102.5"),
        ("-0.0", "0"),
        ("0.1", "0.1"),
        ("1e21", "1e+21"),
        ("1e20", "100000000000000000000"),
        ("123456789012345678901", "123456789012345680000"),
        ("0.000001", "0.000001"),
        ("0.0000001", "1e-7"),
        ("1.5e-10", "1.5e-10"),
        ("2.5E+25", "2.5e+25"),
        ("247.86", "247.86"),
        ("5e-324", "5e-324"),
    ],
)
def test_numbers_print_as_javascript_prints_them(text: str, javascript: str) -> None:
    assert javascript_json.stringify(javascript_json.loads(text)) == javascript


def test_objects_keep_insertion_order_but_integer_keys_come_first() -> None:
    parsed = javascript_json.loads('{"b": 1, "10": 2, "a": [true, null], "2": "x", "01": 3}')
    assert javascript_json.stringify(parsed) == '{"2":"x","10":2,"b":1,"a":[true,null],"01":3}'


def test_strings_keep_non_ascii_and_escape_control_characters() -> None:
    parsed = javascript_json.loads('{"name": "Zo\\u00eb \\u2028 \\"q\\" \\u0001\\n/"}')
    assert javascript_json.stringify(parsed) == '{"name":"Zoë \u2028 \\"q\\" \\u0001\\n/"}'


def test_nan_is_not_json() -> None:
    with pytest.raises(ValueError, match="NaN"):
        javascript_json.loads('{"a": NaN}')
