"""What every endpoint of the sandbox shares: the organizations it serves, the signature
check of Cybersource's REST API, the webhooks it announces, and the answers it writes.

Every change that Cybersource announces by webhook (send, payment, cancel, reminder) sends it;
create, update, publish, pending and rejected send none, as Cybersource has none for them."""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.cybersource.http_signature import (
    MerchantCredentials,
    SignatureMismatch,
    verify_request,
)
from service.cybersource.jwt_authentication import (
    MerchantCertificate,
    VerifiedBearer,
    verify_bearer,
)
from service.cybersource.message_encryption import Shape
from service.domain.status import InvoiceStatus
from service.sandbox import json_numbers
from service.sandbox.deliveries import WebhookDeliveries
from service.sandbox.documents import invoice_details
from service.sandbox.errors import (
    AuthenticationFailed,
    FieldProblem,
    InjectedFault,
    ValidationErrors,
)
from service.sandbox.invoice_requests import parse_json_object
from service.sandbox.invoices import (
    HistoryEntry,
    HistoryEvent,
    Payment,
    SandboxInvoice,
    TransactionDetailsShown,
)
from service.sandbox.notification_encryption import NotificationEncryption, SignatureCovers
from service.sandbox.options import SandboxOptions
from service.sandbox.organizations import OrganizationInvoices, Organizations
from service.sandbox.written_summaries import WrittenSummaries

DATE_SKEW_SECONDS_MAX = 15 * 60
EVENT_TYPE_PREFIX = "invoicing.customer.invoice."
# The invoicing event types a subscription may name (the products answer lists them).
EVENT_TYPES = tuple(
    EVENT_TYPE_PREFIX + name
    for name in (
        "send", "cancel", "paid", "partial-payment", "reminder", "overdue-reminder",
        "partial-resend",
    )
)  # fmt: skip
DEFAULT_OPTIONS = SandboxOptions()
# What a customer or Cybersource does to an invoice at a moment, as its history records it.
InvoiceAction = Callable[[SandboxInvoice, datetime], HistoryEntry]
# A merchant as Cybersource knows it: a shared secret (HTTP Signature) or a certificate (JWT).
SandboxMerchant = MerchantCredentials | MerchantCertificate


class ExactJSONResponse(JSONResponse):
    """JSON whose Decimal amounts are written as exact numbers."""

    def render(self, content: Any) -> bytes:
        return json_numbers.dumps(content).encode()


@dataclass(frozen=True)
class SignedCall:
    """A request whose signature verified: the organization's invoices and the body."""

    invoices: OrganizationInvoices
    body: bytes


class SandboxServer:
    """The sandbox's state (organizations, webhook keys, subscriptions, injected faults) and
    the steps its endpoints share."""

    def __init__(
        self,
        merchants: Sequence[SandboxMerchant],
        *,
        organization_ids: Iterable[str] = (),
        deliveries: WebhookDeliveries | None = None,
        clock: Callable[[], float] = time.time,
        options: SandboxOptions = DEFAULT_OPTIONS,
    ) -> None:
        """``organization_ids``: the organizations served (default: those the keys act for,
        else their owners); the first is the ``/sandbox`` helpers' default. ``deliveries``:
        where and how to send webhooks (none: silent)."""
        self._merchants = {
            merchant.key_id: merchant
            for merchant in merchants
            if isinstance(merchant, MerchantCredentials)
        }
        self._tokens_seen: dict[str, int] = {}  # jti: exp
        self._certificates = {
            merchant.kid: merchant
            for merchant in merchants
            if isinstance(merchant, MerchantCertificate)
        }
        self.organizations = Organizations(tuple(organization_ids) or _organizations_of(merchants))
        self.deliveries = deliveries
        self._clock = clock
        self._options = options
        self.faults: deque[int] = deque()
        self.summaries = WrittenSummaries()
        self.webhook_keys: dict[str, str] = {}
        # Message-level encryption: the event types the products answer says arrive encrypted
        # (a certificate stored with keys-asym encrypts them).
        self.encrypted_event_types: frozenset[str] = options.encrypted_event_types
        self.subscriptions: list[dict[str, Any]] = []
        self.notification_encryption = (
            deliveries.encryption if deliveries is not None else NotificationEncryption()
        )

    def register_notification_certificate(
        self,
        organization_id: str,
        certificate_pem: bytes,
        event_types: Iterable[str],
        shape: Shape | str = Shape.ENC_DATA,
        signature_covers: SignatureCovers | str = SignatureCovers.ENCRYPTED,
    ) -> None:
        """Send the organization's notifications of these event types encrypted for this
        certificate (a merchant's message-level encryption key), in ``shape``;
        ValidationErrors for an unknown organization, certificate, shape or signed form."""
        self.organizations.invoices_of(organization_id)
        try:
            self.notification_encryption.register(
                organization_id, certificate_pem, event_types, shape, signature_covers
            )
        except ValueError:
            raise ValidationErrors(
                "the certificate must be PEM, the shape bare, encData, encryptedRequest or"
                " payload, and the signature cover encrypted or decrypted"
            ) from None

    def act(
        self, invoices: OrganizationInvoices, invoice_number: str, action: InvoiceAction
    ) -> Response:
        """Apply ``action`` to the invoice now, send the webhook Cybersource sends for what it
        did (if any), and answer with the invoice."""
        invoice = invoices.get(invoice_number)
        self.announce(invoices, invoice, action(invoice, self.now()))
        return self.details(invoice)

    def announce(
        self, invoices: OrganizationInvoices, invoice: SandboxInvoice, entry: HistoryEntry
    ) -> None:
        """Send the webhook Cybersource sends for this history entry, if any."""
        event_type = _event_type(invoice, entry)
        if self.deliveries is not None and event_type is not None:
            self.deliveries.notify(
                EVENT_TYPE_PREFIX + event_type, invoices.organization_id, invoice, entry
            )

    def details(self, invoice: SandboxInvoice, status_code: int = 200) -> Response:
        document = invoice_details(
            invoice,
            self.now(),
            transaction_details_on_review=self._options.transaction_details_on_review,
        )
        return ExactJSONResponse(document, status_code=status_code)

    async def signed(self, request: Request) -> SignedCall:
        """The call, once its HTTP Signature or its JWT (``Authorization: Bearer``) verifies."""
        body = await request.body()
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        try:
            if "authorization" in request.headers:
                bearer = verify_bearer(
                    self._certificates,
                    method=request.method,
                    host=request.headers.get("host", ""),
                    path_and_query=target,
                    authorization=request.headers["authorization"],
                    body=body,
                    now=self._clock(),
                )
                self._refuse_a_token_seen_before(bearer)
                organization_id = bearer.organization_id
            else:
                verify_request(
                    self._merchants,
                    method=request.method,
                    path_and_query=target,
                    headers=request.headers,
                    body=body,
                )
                _check_date(request.headers.get("date", ""), self._clock())
                organization_id = request.headers["v-c-merchant-id"]
        except SignatureMismatch as mismatch:
            raise AuthenticationFailed(str(mismatch)) from None
        if self.faults:
            raise InjectedFault(self.faults.popleft())
        return SignedCall(self.organizations.invoices_of(organization_id), body)

    def _refuse_a_token_seen_before(self, bearer: VerifiedBearer) -> None:
        """A JWT's jti makes it good for one request: a replayed token is refused while it
        is still valid (afterwards its exp refuses it)."""
        now = self._clock()
        for token_id, expires in list(self._tokens_seen.items()):
            if expires < now:
                del self._tokens_seen[token_id]
        if bearer.token_id in self._tokens_seen:
            raise SignatureMismatch("the JWT was used before (jti)")
        self._tokens_seen[bearer.token_id] = bearer.expires

    def payment(self, invoices: OrganizationInvoices, body: bytes) -> Payment:
        return _payment(body, self._options.payment_details_for(invoices.organization_id))

    def helper_invoices(self, request: Request) -> OrganizationInvoices:
        return self.organizations.invoices_of(request.query_params.get("organizationId"))

    def helper_invoice(self, request: Request) -> tuple[OrganizationInvoices, SandboxInvoice]:
        invoices = self.helper_invoices(request)
        return invoices, invoices.get(request.path_params["id"])

    def now(self) -> datetime:
        # Milliseconds, as the history writes dates: what it shows is what webhooks are
        # dated against.
        moment = datetime.fromtimestamp(self._clock(), UTC)
        return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _organizations_of(merchants: Sequence[SandboxMerchant]) -> tuple[str, ...]:
    organizations: dict[str, None] = {}
    for credentials in merchants:
        for organization in credentials.organization_ids or (credentials.merchant_id,):
            organizations[organization] = None
    return tuple(organizations)


def _event_type(invoice: SandboxInvoice, entry: HistoryEntry) -> str | None:
    match entry.event:
        case HistoryEvent.SEND | HistoryEvent.RESEND:
            return "send"
        case HistoryEvent.CANCEL:
            return "cancel"
        case HistoryEvent.PAYMENT:
            return "paid" if invoice.status is InvoiceStatus.PAID else "partial-payment"
        case HistoryEvent.REMINDER:
            overdue = invoice.content.due_date < entry.date.date()
            return "overdue-reminder" if overdue else "reminder"
        case _:
            return None  # Cybersource has no webhook for drafts, updates, publishing, reviews


def _payment(body: bytes, shown_by_default: TransactionDetailsShown) -> Payment:
    document = parse_json_object(body)
    try:
        amount = Decimal(str(document["amount"]))
    except (KeyError, InvalidOperation):
        raise ValidationErrors(
            "amount is required", (FieldProblem("amount", "MISSING_FIELD"),)
        ) from None
    try:
        shown = TransactionDetailsShown(document.get("transactionDetails") or shown_by_default)
    except ValueError:
        raise ValidationErrors(
            f"transactionDetails must be one of {', '.join(TransactionDetailsShown)}",
            (FieldProblem("transactionDetails", "INVALID_DATA"),),
        ) from None
    transaction_id = str(document.get("transactionId") or uuid.uuid4().hex)
    return Payment(amount, transaction_id, shown)


def _check_date(value: str, now: float) -> None:
    try:
        sent = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        raise SignatureMismatch("Date header missing or malformed") from None
    if abs(now - sent) > DATE_SKEW_SECONDS_MAX:
        raise SignatureMismatch("Date header too far from the server's clock")
