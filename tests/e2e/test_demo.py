"""`make demo`'s setup (``demo.walkthrough.running_demo``) on free ports in a temporary
directory: the sandbox and the service as processes of their own, the promised state read
over real HTTP, and no process left behind."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx

from demo.walkthrough import (
    DEAD_LETTER_INVOICE,
    DEAD_LETTERS_QUERY,
    EXPECTED_STATUSES,
    WEBHOOK_KEY_ID,
    running_demo,
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_demo_drives_invoices_keeps_a_dead_letter_and_reconciles(tmp_path: Path) -> None:
    with running_demo(tmp_path, free_port(), free_port()) as demo:
        processes = list(demo.processes.values())
        with (
            httpx.Client(base_url=demo.service_url, timeout=10) as service,
            httpx.Client(base_url=demo.sandbox_url, timeout=10) as sandbox,
        ):
            invoices = service.get("/v1/invoices").raise_for_status().json()["items"]
            assert {item["invoiceNumber"]: item["status"] for item in invoices} == (
                EXPECTED_STATUSES
            )
            partial = service.get("/v1/invoices/DEMO-2").raise_for_status().json()
            assert (partial["totalAmount"], partial["balanceAmount"]) == ("80.00", "50.00")
            assert partial["provisional"] == []  # Cybersource's answer confirmed the figures

            sources = {
                event["source"]
                for event in service.get("/v1/invoices/DEMO-3/events")
                .raise_for_status()
                .json()["items"]
            }
            assert sources == {"webhook", "reconciler"}

            dead_letters = service.get(f"/v1/deliveries?{DEAD_LETTERS_QUERY}").raise_for_status()
            [dead_letter] = dead_letters.json()["items"]
            assert dead_letter["outcome"] == "rejected"
            assert dead_letter["reason"].startswith("unusable_body: ")
            assert dead_letter["keyId"] == WEBHOOK_KEY_ID
            assert dead_letter["replayable"] is True
            missing = service.get(f"/v1/invoices/{DEAD_LETTER_INVOICE}")
            assert missing.status_code == 404

            log = sandbox.get("/sandbox/deliveries").raise_for_status().json()
            assert log["sent"] >= 7  # four sends, two payments, one cancelation
            assert log["acknowledged"] == log["sent"]
            assert (log["pending"], log["failed"]) == (0, 0)

            assert service.get("/console").status_code == 200
        assert all(process.poll() is None for process in processes)

    assert demo.processes == {}
    assert all(process.poll() is not None for process in processes)
