"""``invoice-ledger deliveries``, run as a real process against what the receiver kept."""

from __future__ import annotations

import json
from pathlib import Path

from service.cybersource.message_encryption import Shape
from tests.support.cli import invoice_ledger
from tests.support.delivery_log import ledger, post_delivery, two_invoice_notification
from tests.support.encryption import KEY_PASSWORD, encrypted_for, key_files, notification_key
from tests.support.webhooks import encode, invoice_notification


def test_replay_exits_1_naming_the_reason_until_the_delivery_reads_then_0(
    database_url: str,
) -> None:
    with ledger(database_url, webhook_items_max=1) as strict:
        assert post_delivery(strict, two_invoice_notification("n-cli-dead")).status_code == 422
    strict_environment = {"LEDGER_DATABASE_URL": database_url, "LEDGER_WEBHOOK_ITEMS_MAX": "1"}
    relaxed_environment = {**strict_environment, "LEDGER_WEBHOOK_ITEMS_MAX": "10"}

    listed = invoice_ledger(
        "deliveries", "list", "--outcome", "rejected", "--json", environment=strict_environment
    )
    assert listed.returncode == 0, listed.stderr
    [dead_letter] = json.loads(listed.stdout)["items"]
    delivery_id = str(dead_letter["deliveryId"])
    assert dead_letter["reason"].startswith("unusable_body")
    table = invoice_ledger("deliveries", "list", environment=strict_environment)
    header, row = table.stdout.decode().splitlines()
    assert header.split("\t") == [
        "id", "received", "outcome", "event_type", "notification_id", "reason"
    ]  # fmt: skip
    assert row.split("\t")[0] == delivery_id and row.split("\t")[2] == "rejected"

    still = invoice_ledger("deliveries", "replay", delivery_id, environment=strict_environment)
    assert still.returncode == 1
    assert "more than 1 items" in still.stderr.decode()

    reads = invoice_ledger("deliveries", "replay", delivery_id, environment=relaxed_environment)
    assert reads.returncode == 0, reads.stderr
    assert "appended at position(s)" in reads.stdout.decode()
    again = invoice_ledger(
        "deliveries", "replay", delivery_id, "--json", environment=relaxed_environment
    )
    assert again.returncode == 0
    answer = json.loads(again.stdout)
    assert (answer["deliveryId"], answer["result"]) == (int(delivery_id), "duplicate")

    bulk = invoice_ledger(
        "deliveries", "replay", "--all", "--outcome", "rejected", "--reason", "unusable_body",
        environment=relaxed_environment,
    )  # fmt: skip
    assert bulk.returncode == 0, bulk.stderr
    assert "0 replayed" in bulk.stderr.decode()  # what already reads is passed over

    shown = invoice_ledger(
        "deliveries", "show", delivery_id, "--json", environment=relaxed_environment
    )
    detail = json.loads(shown.stdout)
    assert [replay["result"] for replay in detail["replays"]] == [
        "unreadable", "appended", "duplicate"
    ]  # fmt: skip
    assert detail["replays"][0]["replayedBy"].startswith("cli")
    assert detail["body"] is None  # only with --body


def test_invalid_choices_and_arguments_exit_2(database_url: str) -> None:
    environment = {"LEDGER_DATABASE_URL": database_url}
    for arguments in (
        ("deliveries", "list", "--outcome", "bogus"),
        ("deliveries", "list", "--since", "yesterday"),
        ("deliveries", "replay"),
        ("deliveries", "replay", "1", "--all"),
        ("deliveries", "correct", "1"),
        ("deliveries", "list", "--cursor", "not-a-cursor"),
    ):
        result = invoice_ledger(*arguments, environment=environment)
        assert result.returncode == 2, arguments
    unknown = invoice_ledger("deliveries", "replay", "999999", environment=environment)
    assert unknown.returncode == 1
    assert "no delivery 999999" in unknown.stderr.decode()


def test_a_delivery_id_beyond_64_bits_exits_2_from_every_command(database_url: str) -> None:
    environment = {"LEDGER_DATABASE_URL": database_url}
    beyond = str(2**63)
    for arguments in (
        ("deliveries", "show", beyond),
        ("deliveries", "replay", beyond),
        ("deliveries", "correct", beyond, "--reason", "the second version is right"),
        ("deliveries", "resolve", beyond, "--reason", "entered by hand"),
    ):
        result = invoice_ledger(*arguments, environment=environment)
        assert result.returncode == 2, (arguments, result.stderr)
        assert b"Traceback" not in result.stderr


def test_show_puts_a_conflicts_versions_side_by_side_and_correct_records_the_second(
    database_url: str,
) -> None:
    first = invoice_notification("INV-CC", notification_id="n-cli-conflict", balance="100.00")
    second = invoice_notification("INV-CC", notification_id="n-cli-conflict", balance="80.00")
    with ledger(database_url) as api:
        for document in (first, second):
            assert post_delivery(api, encode(document)).status_code == 200
    environment = {"LEDGER_DATABASE_URL": database_url}
    listed = invoice_ledger(
        "deliveries", "list", "--outcome", "conflict", "--json", environment=environment
    )
    delivery_id = str(json.loads(listed.stdout)["items"][0]["deliveryId"])

    shown = invoice_ledger("deliveries", "show", delivery_id, environment=environment)
    assert shown.returncode == 0, shown.stderr
    differing = [line for line in shown.stdout.decode().splitlines() if line.startswith("*")]
    assert len(differing) == 1
    assert differing[0].split() == ["*", "balanceAmount", "100.00", "80.00"]

    corrected = invoice_ledger(
        "deliveries", "correct", delivery_id, "--reason", "confirmed by Cybersource", "--json",
        environment=environment,
    )  # fmt: skip
    assert corrected.returncode == 0, corrected.stderr
    assert json.loads(corrected.stdout)["result"] == "appended"
    events = invoice_ledger("events", "--invoice", "INV-CC", environment=environment)
    sources = [json.loads(line)["source"] for line in events.stdout.decode().splitlines()]
    assert sources == ["webhook", "operator"]
    not_a_conflict = invoice_ledger(
        "deliveries", "correct", str(int(delivery_id) - 1), "--reason", "x",
        environment=environment,
    )  # fmt: skip
    assert not_a_conflict.returncode == 1
    assert "not_a_conflict" in not_a_conflict.stderr.decode()


def test_an_undecryptable_dead_letter_replays_from_the_command_once_its_key_is_configured(
    database_url: str, tmp_path: Path
) -> None:
    key = notification_key("3141")
    body = encrypted_for(key, encode(invoice_notification("INV-CLI-E")), Shape.ENC_DATA)
    with ledger(database_url) as without_keys:
        assert post_delivery(without_keys, body).status_code == 422
    environment = {"LEDGER_DATABASE_URL": database_url}
    listed = invoice_ledger("deliveries", "list", "--json", environment=environment)
    [dead_letter] = json.loads(listed.stdout)["items"]
    assert dead_letter["reason"] == "undecryptable: no decryption key is configured"
    delivery_id = str(dead_letter["deliveryId"])
    with_key = {
        **environment,
        "LEDGER_NOTIFICATION_DECRYPTION_KEYS": key_files(tmp_path, key),
        "LEDGER_NOTIFICATION_DECRYPTION_KEY_PASSWORD": KEY_PASSWORD,
    }
    reads = invoice_ledger("deliveries", "replay", delivery_id, environment=with_key)
    assert reads.returncode == 0, reads.stderr
    assert "appended at position(s)" in reads.stdout.decode()
    assert "Tanya" not in (reads.stdout + reads.stderr).decode()  # the payer's name
    events = invoice_ledger("events", "--invoice", "INV-CLI-E", environment=with_key)
    assert events.returncode == 0 and b"InvoiceSent" in events.stdout
