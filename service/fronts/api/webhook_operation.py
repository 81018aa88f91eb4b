"""The webhook endpoint as the OpenAPI document describes it (the receiver is in
service.ingest; this is only its contract, so that the one document lists every path)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from service.fronts.api.contract import ApiOperation
from service.read.models import Document

WEBHOOK_PATH = "/webhooks/cybersource"


class WebhookAnswer(Document):
    status: Literal["accepted", "duplicate", "conflict", "ignored", "ok"] = Field(
        description="What became of the delivery (ok: the health check's answer)."
    )


WEBHOOK_OPERATIONS = (
    ApiOperation(
        path=WEBHOOK_PATH,
        method="post",
        operation_id="receiveWebhook",
        summary="Cybersource invoicing notification (signed)",
        description="Verified against the key named in v-c-signature, recorded, and "
        "acknowledged; projection and reconciliation happen behind it.",
        request_body={
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        response=WebhookAnswer,
        response_description="Recorded, or already recorded",
        errors=(401, 413, 422, 503),
        secured=False,
        tags=("webhooks",),
    ),
    ApiOperation(
        path=WEBHOOK_PATH,
        method="get",
        operation_id="webhookHealthCheck",
        summary="Cybersource's health check of the webhook URL",
        response=WebhookAnswer,
        response_description="The endpoint is there",
        errors=(),
        secured=False,
        tags=("webhooks",),
    ),
)
