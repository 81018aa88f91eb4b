"""Folding a stream (one invoice number's facts, perhaps of several organizations) into its
invoices' rows: from all its facts, or from its snapshot and a batch's new facts alone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from service.domain.events import RecordedEvent
from service.domain.identity import (
    UNKNOWN_ORGANIZATION,
    invoices_in_stream,
    organization_named_by,
)
from service.domain.invoice import InvoiceState, continued_history, folded_history
from service.projections.fold_snapshots import InvoiceSnapshot, StreamSnapshot
from service.store.views.changes import ProjectedInvoice


@dataclass(frozen=True, slots=True)
class StreamFold:
    invoices: list[ProjectedInvoice]
    # None when some invoice's facts establish nothing yet: the next batch folds them all.
    snapshot: StreamSnapshot | None


def fold_stream(
    invoice_number: str, events: Sequence[RecordedEvent], *, keep_snapshot: bool = True
) -> StreamFold:
    """Every invoice of the stream from all its facts, and the stream's snapshot (unless not
    wanted: a rebuild keeps none)."""
    projected, snapshots = [], {}
    complete = True
    invoices = invoices_in_stream(invoice_number, events)
    for key, invoice_events in sorted(invoices.items()):
        history, fold = folded_history(key.invoice_number, invoice_events, key.organization_id)
        updated_at = max(event.recorded_at for event in invoice_events)
        projected.append(ProjectedInvoice(history[-1], history, updated_at))
        if fold is None:
            complete = False
        elif keep_snapshot:
            snapshots[key.organization_id] = InvoiceSnapshot(fold, updated_at)
    if not complete or not keep_snapshot:
        return StreamFold(projected, None)
    # Facts naming no organization are the unknown organization's ("") or the one named one's.
    named = frozenset(key.organization_id for key in invoices) - {UNKNOWN_ORGANIZATION}
    return StreamFold(projected, StreamSnapshot(named, snapshots))


def continue_stream(
    snapshot: StreamSnapshot, new_events: Sequence[RecordedEvent]
) -> StreamFold | None:
    """The invoices the new facts change, folded onto the snapshot; None when some new fact
    cannot be (see ``continued_history``), or when it would regroup the stream's facts (it
    names an organization the stream had not named)."""
    if not _named(new_events) <= snapshot.named_organizations:
        return None
    home = (
        next(iter(snapshot.named_organizations))
        if len(snapshot.named_organizations) == 1
        else ""
    )
    by_organization: dict[str, list[RecordedEvent]] = {}
    for event in new_events:
        organization = organization_named_by(event.data) or home
        by_organization.setdefault(organization, []).append(event)
    invoices = dict(snapshot.invoices)
    projected = []
    for organization, events in sorted(by_organization.items()):
        before = invoices.get(organization)
        if before is None:
            return None  # the first fact of an invoice: nothing to continue
        continued = continued_history(before.fold, events)
        if continued is None:
            return None
        history, fold = continued
        updated_at = max(before.updated_at, *(event.recorded_at for event in events))
        projected.append(
            ProjectedInvoice(
                history[-1],
                history,
                updated_at,
                history_from=before.fold.last_state.last_event_at,
                collections_kept=_collections_kept(before.fold.last_state, history[-1]),
                collections_before=len(before.fold.last_state.collections),
            )
        )
        invoices[organization] = InvoiceSnapshot(fold, updated_at)
    return StreamFold(projected, StreamSnapshot(snapshot.named_organizations, invoices))


def _named(events: Sequence[RecordedEvent]) -> frozenset[str]:
    return frozenset(
        organization
        for organization in (organization_named_by(event.data) for event in events)
        if organization is not None
    )


def _collections_kept(before: InvoiceState, after: InvoiceState) -> int:
    """How many collection rows stand: those before the first that changed (settling the money
    may fill in or drop earlier ones), or none when the currency their rows name changed."""
    if before.currency != after.currency:
        return 0
    kept = 0
    for old, new in zip(before.collections, after.collections, strict=False):
        if old != new:
            break
        kept += 1
    return kept
