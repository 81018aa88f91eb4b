"""Which of an invoice's payments brought money that is counted provisionally.

A payment and the collection it brought share their provider time; the collection says
whether its amount is inferred from notifications alone (``Collection.provisional``) and so
reported apart from confirmed money until Cybersource's answer confirms or corrects it.
"""

from __future__ import annotations

from service.domain.invoice import InvoiceState


def provisional_payments(state: InvoiceState) -> tuple[bool, ...]:
    """Per payment of ``state``, in order: whether the money it brought is provisional."""
    if not state.payments:
        return ()  # most invoices: no set of instants to build for no payment
    instants = {c.collected_at for c in state.collections if c.provisional}
    return tuple(payment.received_at in instants for payment in state.payments)
