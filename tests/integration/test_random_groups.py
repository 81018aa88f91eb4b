"""Random groups of deliveries, on both engines, answered exactly as the same deliveries
appended one after another would be: outcomes, the event each answer points to, every
stream's versions, and each delivery's inbox row.

The groups are drawn from a small pool of streams, keys and contents, so that one group holds
the same notification twice, a key already stored, a key stored with other content, a key
reused by another stream, deliveries of several facts with mixed outcomes, facts without an
inbox row and inbox rows without a fact."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from service.store.events.base import AppendOutcome, Delivery, EventStore, InboxEntry
from tests.support.events import invoice_event

pytestmark = pytest.mark.anyio

SEEDS = range(6)
GROUPS_PER_SEED = 12
STREAMS = ("INV-1", "INV-2", "INV-3")
KEYS = tuple(f"key-{number}" for number in range(14))
BALANCES = ("10.00", "7.50")
Fact = tuple[str, str, str]  # stream, key, balance


@dataclass
class SequentialModel:
    """What one-after-another appends answer: the first fact of a key is appended, later ones
    are duplicates (same content) or conflicts (other content) of it."""

    stored: dict[str, tuple[tuple[str, str], int]] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    appended: list[tuple[str, int]] = field(default_factory=list)  # (stream, version) in order
    next_fact: int = 0

    def append(self, facts: list[Fact]) -> list[tuple[AppendOutcome, int]]:
        answers = []
        for stream, key, balance in facts:
            fact = self.next_fact
            self.next_fact += 1
            if key not in self.stored:
                self.stored[key] = ((stream, balance), fact)
                self.versions[stream] = self.versions.get(stream, 0) + 1
                self.appended.append((stream, self.versions[stream]))
                answers.append((AppendOutcome.APPENDED, fact))
                continue
            content, first = self.stored[key]
            same = content == (stream, balance)
            answers.append((AppendOutcome.DUPLICATE if same else AppendOutcome.CONFLICT, first))
        return answers


def inbox_outcome(outcomes: list[AppendOutcome]) -> str:
    if AppendOutcome.CONFLICT in outcomes:
        return "conflict"
    return "accepted" if AppendOutcome.APPENDED in outcomes else "duplicate"


def random_group(rng: random.Random) -> list[tuple[list[Fact], bool]]:
    """Deliveries as (their facts, whether they have an inbox row)."""
    group = []
    for _ in range(rng.randint(1, 6)):
        facts = [
            (rng.choice(STREAMS), rng.choice(KEYS), rng.choice(BALANCES))
            for _ in range(rng.choice((0, 1, 1, 1, 2, 3)))
        ]
        group.append((facts, not facts or rng.random() < 0.8))
    return group


@pytest.mark.parametrize("seed", SEEDS)
async def test_a_random_group_is_answered_as_its_deliveries_one_after_another(
    event_store: EventStore, seed: int
) -> None:
    rng = random.Random(seed)
    model = SequentialModel()
    position_of_fact: dict[int, int] = {}
    expected_inbox: list[tuple[str, str, int | None]] = []
    for group_number in range(GROUPS_PER_SEED):
        deliveries = []
        expected = []
        for delivery_number, (facts, with_inbox) in enumerate(random_group(rng)):
            name = f"{group_number}-{delivery_number}"
            entry = InboxEntry(received_at=datetime.now(UTC), notification_id=name)
            events = [invoice_event(s, k, balanceAmount=b) for s, k, b in facts]
            deliveries.append(Delivery(events, entry if with_inbox else None))
            expected.append((name, with_inbox, model.append(facts)))

        results = await event_store.append_group(deliveries)

        for (name, with_inbox, answers), result in zip(expected, results, strict=True):
            assert not isinstance(result, Exception), result
            assert [r.outcome for r in result] == [outcome for outcome, _ in answers], name
            for (outcome, fact), answer in zip(answers, result, strict=True):
                if outcome is AppendOutcome.APPENDED:
                    position_of_fact[fact] = answer.position
                assert answer.position == position_of_fact[fact], name
            if with_inbox:
                first = position_of_fact[answers[0][1]] if answers else None
                outcome_of_delivery = inbox_outcome([outcome for outcome, _ in answers])
                expected_inbox.append((name, outcome_of_delivery, first))

    recorded = await event_store.read_after(0, limit=1000)
    assert [(event.stream_id, event.version) for event in recorded] == model.appended
    inbox_rows = await event_store.inbox_entries(limit=1000)
    assert sorted(
        (row["notification_id"], row["outcome"], row["event_position"]) for row in inbox_rows
    ) == sorted(expected_inbox)
