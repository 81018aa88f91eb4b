from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.cybersource import javascript_json


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


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec=None, exclude_categories=())),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(max_size=4) | st.integers(0, 2**33).map(str), children, max_size=4
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(payload=JSON_VALUES, number_style=st.sampled_from(["repr", "exponent", "fixed"]))
def test_the_fast_reserialisation_prints_what_javascript_prints(
    payload: object, number_style: str
) -> None:
    # JSON text as a sender may write it: Python's own output, numbers in other notations.
    text = json.dumps({"payload": payload})
    if number_style != "repr":
        text = re.sub(
            r"(?<![\w.\"\\])-?\d+\.\d+(?:e[-+]?\d+)?",
            lambda m: format(float(m.group()), "e" if number_style == "exponent" else "f"),
            text,
        )
    expected = javascript_json.stringify(javascript_json.loads(text)["payload"])
    fast = javascript_json.reserialized_field(text, ("payload", "payloads"))
    if payload is None:
        assert fast is None
    else:
        assert fast == expected.encode("utf-8", "surrogatepass")


def test_the_fast_reserialisation_names_the_first_field_present() -> None:
    assert javascript_json.reserialized_field('{"payloads": [1.0]}', ("payload", "payloads")) == (
        b"[1]"
    )
    assert (
        javascript_json.reserialized_field('{"payload": null, "payloads": [1]}', ("payload",))
        is None
    )
    assert javascript_json.reserialized_field("[1]", ("payload",)) is None
