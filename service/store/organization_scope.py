"""The SQL condition of an organization scope (service.domain.identity.OrganizationScope)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, false

from service.domain.identity import OrganizationScope


def in_scope(column: Any, scope: OrganizationScope) -> list[ColumnElement[bool]]:
    """Conditions keeping ``column``'s rows within ``scope``: none for every organization."""
    if scope is None:
        return []
    if isinstance(scope, str):
        return [column == scope]
    if not scope:
        return [false()]
    return [column.in_(sorted(scope))]
