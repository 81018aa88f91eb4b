"""An invoice's state, at every moment, as a pure function of its facts.

Facts are ordered by provider time, ties broken by store position, so any delivery order
gives the same answer. An operator's correction is read in place of the event it corrects,
at that event's time and position. Two kinds of fact weigh differently:

- **Get Invoice Details** (an observation, with its ``invoiceHistory``) is the truth as of
  the moment Cybersource produced it. Up to the latest observation, the invoice's past is
  reconstructed from the provider's history alone: its payments are the ``PAYMENT`` entries
  (and only those), its total is the one observed from the last ``UPDATE`` (or its creation)
  on (updates are allowed only before any payment), its balance at any moment is that total
  less the payments up to then. A payment entry without an amount takes it from the
  Transaction Details API's answer, or from the balance its own notification states, or is
  the one entry left to explain what the observation says was paid; several such entries
  keep their amounts unknown: a split is never guessed. Notifications dated before the
  latest observation are superseded by it.
- **Notifications** after the latest observation are provisional: they show changes at once,
  and the next observation supersedes them; they never restate what it answered. They carry
  no transaction id, so a payment is the balance decrease they report. The total may have
  been updated since it was last stated (updates send no notification), so the first
  payment a notification reports is the balance before less the balance after, labelled
  provisional (as is a total taken from a send's balance) until the next observation; once
  a payment is known the total cannot change, and every later decrease a payment
  notification reports is exact. A send or a reminder folded after a payment may have been
  sent before an update that raised the total (its eventDate strays by minutes), so it
  moves no money.

Money rules that hold at every moment: where total and balance are known, the collections
sum to total - balance (unless several are of unknown amount); PAID means a balance of 0;
unknown stays unknown (None), never 0, and never a guess.
"""

from service.domain.invoice.corrections import corrected_by
from service.domain.invoice.fold import (
    continued_history,
    fold,
    fold_as_of,
    folded_history,
    state_history,
)
from service.domain.invoice.running import next_status
from service.domain.invoice.state import Collection, FoldSnapshot, InvoiceState, Payment

__all__ = [
    "Collection",
    "FoldSnapshot",
    "InvoiceState",
    "Payment",
    "continued_history",
    "corrected_by",
    "fold",
    "fold_as_of",
    "folded_history",
    "next_status",
    "state_history",
]
