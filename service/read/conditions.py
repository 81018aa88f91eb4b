"""Conditions the read side's queries share: which state of an invoice was in force when,
which aging bucket a due date falls in, which organization a row belongs to."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_

from service.domain.identity import OrganizationScope
from service.domain.reports import days_before
from service.domain.status import OPEN_STATUSES
from service.store.organization_scope import in_scope
from service.store.schema import invoice_versions

OPEN = sorted(status.value for status in OPEN_STATUSES)


def aging_buckets(as_of: date, due: ColumnElement[Any]) -> dict[str, ColumnElement[bool]]:
    """Each aging bucket's rule on a due date, by days past due on ``as_of``."""
    days_30, days_60, days_90 = (days_before(as_of, days) for days in (30, 60, 90))
    return {
        "current": due >= as_of,
        "days1To30": and_(due < as_of, due >= days_30),
        "days31To60": and_(due < days_30, due >= days_60),
        "days61To90": and_(due < days_60, due >= days_90),
        "over90": due < days_90,
        "noDueDate": due.is_(None),
    }


def in_organization(table: Any, organizations: OrganizationScope) -> list[ColumnElement[bool]]:
    return in_scope(table.c.organization_id, organizations)


def valid_at(moment: datetime) -> ColumnElement[bool]:
    return and_(
        invoice_versions.c.valid_from <= moment,
        or_(invoice_versions.c.valid_to.is_(None), invoice_versions.c.valid_to > moment),
    )


def valid_before(moment: datetime) -> ColumnElement[bool]:
    """The state in force just before ``moment`` (the end of a day, exclusive)."""
    return and_(
        invoice_versions.c.valid_from < moment,
        or_(invoice_versions.c.valid_to.is_(None), invoice_versions.c.valid_to >= moment),
    )
