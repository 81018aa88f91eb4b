"""Text cells a spreadsheet will not run as formulas.

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return as a formula: a payer named ``=HYPERLINK(...)`` would run in finance's spreadsheet.
Such a text is prefixed with ``'`` (OWASP's rule), unless it is a plain number.
"""

from __future__ import annotations

import re

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def not_a_formula(text: str) -> str:
    if text.startswith(FORMULA_TRIGGERS) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text
