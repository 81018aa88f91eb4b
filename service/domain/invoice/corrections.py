"""An operator's corrections: each corrected event is read as its standing correction says."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from service.domain.events import RecordedEvent
from service.domain.invoice.facts import _Fact
from service.domain.payloads import CorrectionRecorded, Payload, decode


def corrected_by(events: Iterable[RecordedEvent]) -> dict[int, int]:
    """For the audit trail: each event an operator's correction replaces (a first-hand fact,
    or an earlier correction of it), by position, and the position of the correction that
    stands in its place."""
    payloads = {event.position: decode(event) for event in events}
    replaced = {}
    for target, (standing, corrections) in _corrections_by_target(payloads).items():
        replaced[target] = standing
        replaced.update((c, standing) for c in corrections if c != standing)
    return replaced


def _corrections_by_target(payloads: Mapping[int, Payload]) -> dict[int, tuple[int, list[int]]]:
    """For each corrected first-hand event (by position): the correction that stands (the
    latest recorded) and every correction of it. A correction of a correction corrects the
    event the first one corrected; a correction whose event is not among ``payloads`` is
    left out."""
    by_target: dict[int, tuple[int, list[int]]] = {}
    for position in sorted(payloads):
        if not isinstance(payloads[position], CorrectionRecorded):
            continue
        target = _corrected_position(position, payloads)
        if target is not None:
            earlier = by_target.get(target, (position, []))[1]
            by_target[target] = (position, [*earlier, position])
    return by_target


def _corrected_position(position: int, payloads: Mapping[int, Payload]) -> int | None:
    visited = {position}
    payload = payloads[position]
    while isinstance(payload, CorrectionRecorded):
        target = payload.corrects_position
        if target is None or target in visited or target not in payloads:
            return None
        visited.add(target)
        position, payload = target, payloads[target]
    return position


def _corrected(facts: list[_Fact]) -> list[_Fact]:
    """The facts as the operator's corrections say they should have been received: each
    corrected event is read as its standing correction says, at its own place in the fold
    (its provider time and store position), and no correction is folded again on its own.
    A correction whose event is not among ``facts`` is folded as the notification it
    states."""
    if not any(isinstance(fact.payload, CorrectionRecorded) for fact in facts):
        return facts
    by_position = {fact.key[1]: fact for fact in facts}
    by_target = _corrections_by_target({p: fact.payload for p, fact in by_position.items()})
    applied = {c for _, corrections in by_target.values() for c in corrections}
    result = []
    for fact in facts:
        position = fact.key[1]
        if position in applied:
            continue
        if position in by_target:
            standing = by_position[by_target[position][0]]
            assert isinstance(standing.payload, CorrectionRecorded)
            fact = _Fact(
                replace(fact.event, type=standing.event.type),
                standing.payload.corrected_fact(),
                fact.key,
            )
        result.append(fact)
    return result
