"""A report's rows from its sums: one row per key and currency, in a stable order, with
the provisional part and ``incomplete`` beside each sum (see service/read/queries.py)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from service.domain.reports import AGING_BUCKETS
from service.store.exact_sums import GroupSums, PartialSum


def report_order(item: dict[str, Any]) -> tuple[str, ...]:
    return (item.get("period", ""), item.get("status") or "", item["currency"] or "")


def customer_order(item: dict[str, Any]) -> tuple[str, ...]:
    keys = ("organization_id", "customer_name", "customer_email", "currency")
    return tuple(item[key] or "" for key in keys)


def outstanding_items(sums: Sequence[tuple[str | None, int, PartialSum]]) -> list[dict[str, Any]]:
    items = [
        {
            "currency": currency,
            "invoices": count,
            "balance": balance.amount,
            "provisional_balance": balance.provisional_amount,
            "incomplete": balance.incomplete,
        }
        for currency, count, balance in sums
    ]
    return sorted(items, key=report_order)


def aging_items(groups: Sequence[GroupSums]) -> list[dict[str, Any]]:
    items = [
        {
            "currency": group.key[0],
            **{name: group.sums[name].amount for name in AGING_BUCKETS},
            "provisional_balance": across_buckets(group).provisional_amount,
            "incomplete": group.incomplete,
        }
        for group in groups
    ]
    return sorted(items, key=report_order)


def across_buckets(group: GroupSums) -> PartialSum:
    """An aging row's balances in every bucket together (each invoice is in one bucket)."""
    return sum((group.sums[name] for name in AGING_BUCKETS), PartialSum())


def collection_items(
    sums: Iterable[tuple[tuple[str, str | None], PartialSum]],
) -> list[dict[str, Any]]:
    by_period: dict[tuple[str, str | None], PartialSum] = {}
    for key, amount in sums:
        by_period[key] = by_period.get(key, PartialSum()) + amount
    items = [
        {
            "period": period,
            "currency": currency,
            "amount": amount.amount,
            "provisional_amount": amount.provisional_amount,
            "incomplete": amount.incomplete,
        }
        for (period, currency), amount in by_period.items()
    ]
    return sorted(items, key=report_order)
