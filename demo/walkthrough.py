"""The README's "Five minutes with a local Cybersource", run for you.

``python -m demo`` (``make demo``) starts the sandbox and ``invoice-ledger serve`` as
processes of their own on a throwaway SQLite database under ``var/demo/``, with the README's
demo keys; creates a few invoices in the sandbox and drives them through its ``/sandbox``
endpoints (webhooks flow to the ledger); sends one correctly signed notification the ledger
cannot read (a dead letter); runs ``invoice-ledger reconcile --sweep --full``; prints the
URLs to open and keeps both processes running until Ctrl-C or SIGTERM.

Everything goes through the processes' public faces (HTTP and the command line), one
function per step, and every wait is bounded. ``running_demo`` is the setup and teardown
without the waiting, for the test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import FrameType

import httpx

# The README's demo keys: never use them anywhere but on loopback.
WEBHOOK_KEY_ID = "demo-key"
WEBHOOK_SECRET = "ZGVtby1zaWduaW5nLWtleS1kby1ub3QtdXNlLWluLXByb2R1Y3Rpb24="
DEMO_ENVIRONMENT = {
    "LEDGER_WEBHOOK_KEYS": f"{WEBHOOK_KEY_ID}:{WEBHOOK_SECRET}",
    "LEDGER_CYBERSOURCE_MERCHANT_ID": "ledgertest",
    "LEDGER_CYBERSOURCE_KEY_ID": "demo-rest-key",
    "LEDGER_CYBERSOURCE_SECRET_KEY": "ZGVtby1yZXN0LXNlY3JldC1kby1ub3QtdXNlLTAxMjM=",
}
ORGANIZATION_ID = DEMO_ENVIRONMENT["LEDGER_CYBERSOURCE_MERCHANT_ID"]
HOST = "127.0.0.1"
DEMO_ROOT = Path(__file__).resolve().parent.parent / "var" / "demo"

STARTUP_TIMEOUT_SECONDS = 30.0
COMMAND_TIMEOUT_SECONDS = 60.0
WEBHOOKS_TIMEOUT_SECONDS = 30.0
LEDGER_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0
HTTP_TIMEOUT_SECONDS = 10.0
POLL_SECONDS = 0.2

# What each invoice ends as, once the webhooks and the reconciler have told the ledger.
EXPECTED_STATUSES = {"DEMO-1": "SENT", "DEMO-2": "PARTIAL", "DEMO-3": "PAID", "DEMO-4": "CANCELED"}
DEAD_LETTER_INVOICE = "DEMO-9"
# The delivery log's dead letters: rejected, signed but unreadable.
DEAD_LETTERS_QUERY = "outcome=rejected&reason=unusable_body"


class DemoFailed(RuntimeError):
    """A step did not finish in time, or a process stopped; the message says which."""


@dataclass
class Demo:
    """The running demo: where its files are, and its two processes."""

    directory: Path
    service_port: int
    sandbox_port: int
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def service_url(self) -> str:
        return f"http://{HOST}:{self.service_port}"

    @property
    def sandbox_url(self) -> str:
        return f"http://{HOST}:{self.sandbox_port}"

    def log_path(self, name: str) -> Path:
        return self.directory / f"{name}.log"

    def environment(self) -> dict[str, str]:
        """The caller's environment without its LEDGER_* variables (a shell's tokens or
        PostgreSQL URL must not leak into the demo), plus the demo's."""
        inherited = {
            name: value for name, value in os.environ.items() if not name.startswith("LEDGER_")
        }
        return {
            **inherited,
            **DEMO_ENVIRONMENT,
            "LEDGER_DATABASE_URL": f"sqlite:///{(self.directory / 'ledger.db').resolve()}",
            "LEDGER_CYBERSOURCE_BASE_URL": self.sandbox_url,
        }


def ledger_command(*arguments: str) -> list[str]:
    """``invoice-ledger`` run by this interpreter (the venv's), wherever its scripts are."""
    return [sys.executable, "-m", "service.fronts.cli", *arguments]


def run_command(demo: Demo, *arguments: str) -> str:
    """A command to completion within COMMAND_TIMEOUT_SECONDS; its standard output."""
    try:
        finished = subprocess.run(
            ledger_command(*arguments),
            env=demo.environment(),
            capture_output=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise DemoFailed(
            f"invoice-ledger {arguments[0]} took over {COMMAND_TIMEOUT_SECONDS} s"
        ) from None
    if finished.returncode != 0:
        raise DemoFailed(
            f"invoice-ledger {' '.join(arguments)} exited {finished.returncode}:\n"
            + finished.stderr.decode(errors="replace")
        )
    return finished.stdout.decode()


def migrate(demo: Demo) -> None:
    run_command(demo, "migrate")


def require_free_ports(demo: Demo) -> None:
    """Refuse a port something already listens on (a `make run` left open would otherwise
    answer the demo's health checks)."""
    for name, port in (("service", demo.service_port), ("sandbox", demo.sandbox_port)):
        with socket.socket() as probe:
            if probe.connect_ex((HOST, port)) == 0:
                raise DemoFailed(
                    f"{HOST}:{port} is taken: give the {name} another port (see --help)"
                )


def start_process(demo: Demo, name: str, arguments: list[str]) -> None:
    """A process of its own session: Ctrl-C reaches the demo, which stops it in order."""
    with demo.log_path(name).open("wb") as log:
        demo.processes[name] = subprocess.Popen(
            ledger_command(*arguments),
            env=demo.environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_until_answering(demo: Demo, name: str, url: str) -> None:
    process = demo.processes[name]
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while True:
        try:
            httpx.get(url, timeout=1).raise_for_status()
            return
        except httpx.HTTPError:
            if process.poll() is not None:
                raise DemoFailed(
                    f"{name} exited {process.returncode}; see {demo.log_path(name)}"
                ) from None
            if time.monotonic() > deadline:
                raise DemoFailed(
                    f"{name} did not answer {url} within {STARTUP_TIMEOUT_SECONDS} s"
                ) from None
            time.sleep(POLL_SECONDS)


def start_sandbox(demo: Demo) -> None:
    """The local Cybersource, delivering webhooks to the ledger with retries a second apart."""
    webhook_url = f"{demo.service_url}/webhooks/cybersource"
    start_process(
        demo,
        "sandbox",
        [
            "sandbox",
            "--host",
            HOST,
            "--port",
            str(demo.sandbox_port),
            "--webhook-url",
            webhook_url,
            "--seconds-per-minute",
            "1",
        ],
    )
    wait_until_answering(demo, "sandbox", f"{demo.sandbox_url}/sandbox/deliveries")


def start_service(demo: Demo) -> None:
    start_process(demo, "service", ["serve", "--host", HOST, "--port", str(demo.service_port)])
    wait_until_answering(demo, "service", f"{demo.service_url}/readyz")


def create_invoices(sandbox: httpx.Client) -> None:
    """Four invoices in the sandbox, as drafts; DEMO-2 may be paid in part."""
    today = datetime.now(UTC).date()
    invoices = [
        ("DEMO-1", "120.00", today + timedelta(days=30), "Ada Lovelace", False),
        ("DEMO-2", "80.00", today + timedelta(days=14), "Grace Hopper", True),
        ("DEMO-3", "45.50", today + timedelta(days=7), "Alan Turing", False),
        ("DEMO-4", "60.00", today + timedelta(days=21), "Edsger Dijkstra", False),
    ]
    for number, total, due, customer, partial in invoices:
        sandbox.post(
            "/sandbox/invoices",
            json={
                "invoiceNumber": number,
                "totalAmount": total,
                "currency": "USD",
                "dueDate": due.isoformat(),
                "customerName": customer,
                "allowPartialPayments": partial,
            },
        ).raise_for_status()


def drive_invoices(sandbox: httpx.Client) -> None:
    """Sent, partially paid, paid and canceled: each change a webhook to the ledger."""
    for number in EXPECTED_STATUSES:
        sandbox.post(f"/sandbox/invoices/{number}/send").raise_for_status()
    sandbox.post(
        "/sandbox/invoices/DEMO-2/pay", json={"amount": "30.00", "transactionId": "demo-tx-1"}
    ).raise_for_status()
    sandbox.post(
        "/sandbox/invoices/DEMO-3/pay", json={"amount": "45.50", "transactionId": "demo-tx-2"}
    ).raise_for_status()
    sandbox.post("/sandbox/invoices/DEMO-4/cancel").raise_for_status()


def wait_for_webhooks(sandbox: httpx.Client) -> dict[str, object]:
    """Until the sandbox has no delivery pending; its delivery log."""
    deadline = time.monotonic() + WEBHOOKS_TIMEOUT_SECONDS
    while True:
        log: dict[str, object] = sandbox.get("/sandbox/deliveries").raise_for_status().json()
        if log.get("pending") == 0 and log.get("sent"):
            return log
        if time.monotonic() > deadline:
            raise DemoFailed(f"webhooks still pending after {WEBHOOKS_TIMEOUT_SECONDS} s: {log}")
        time.sleep(POLL_SECONDS)


def unreadable_notification(today: date) -> bytes:
    """A partial-payment notification whose balance is not an amount: signed correctly, it is
    kept whole as a dead letter (422 unusable_body) for an operator to look at."""
    return json.dumps(
        {
            "notificationId": f"demo-dead-letter-{int(time.time() * 1000)}",
            "retryNumber": 0,
            "eventType": "invoicing.customer.invoice.partial-payment",
            "eventDate": datetime.now(UTC).isoformat(),
            "webhookId": "demo-webhook",
            "payloads": [
                {
                    "data": {
                        "invoiceNumber": DEAD_LETTER_INVOICE,
                        "balanceAmount": "twelve dollars",
                        "currency": "USD",
                        "dueDate": (today + timedelta(days=30)).isoformat(),
                        "organizationID": ORGANIZATION_ID,
                    }
                }
            ],
        }
    ).encode()


def send_dead_letter(demo: Demo, service: httpx.Client) -> None:
    """Signed by ``invoice-ledger sign-webhook``, as the README's first walkthrough does."""
    body = unreadable_notification(datetime.now(UTC).date())
    body_path = demo.directory / "dead-letter.json"
    body_path.write_bytes(body)
    signature = run_command(
        demo, "sign-webhook", "--key-id", WEBHOOK_KEY_ID, str(body_path)
    ).strip()
    answer = service.post(
        "/webhooks/cybersource",
        content=body,
        headers={"Content-Type": "application/json", "v-c-signature": signature},
    )
    if answer.status_code != 422:
        raise DemoFailed(
            f"the unreadable notification was answered {answer.status_code}: {answer.text}"
        )


def reconcile(demo: Demo) -> str:
    """A sweep of every invoice in the sandbox (it takes the serving reconciler's lease for
    the while); the summary it prints."""
    return run_command(demo, "reconcile", "--sweep", "--full")


def wait_for_ledger(service: httpx.Client) -> dict[str, str]:
    """Until /v1 shows every invoice in its expected status (the projector has caught up)."""
    deadline = time.monotonic() + LEDGER_TIMEOUT_SECONDS
    while True:
        page = service.get("/v1/invoices", params={"limit": 100}).raise_for_status().json()
        statuses = {item["invoiceNumber"]: item["status"] for item in page["items"]}
        if all(statuses.get(number) == status for number, status in EXPECTED_STATUSES.items()):
            return statuses
        if time.monotonic() > deadline:
            raise DemoFailed(f"after {LEDGER_TIMEOUT_SECONDS} s the ledger shows {statuses}")
        time.sleep(POLL_SECONDS)


def stop_processes(demo: Demo) -> None:
    """The sandbox first (no more webhooks), then the service: SIGTERM, then SIGKILL after
    STOP_TIMEOUT_SECONDS."""
    for name in ("sandbox", "service"):
        process = demo.processes.pop(name, None)
        if process is None or process.poll() is not None:
            continue
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_SECONDS)


@contextmanager
def running_demo(directory: Path, service_port: int, sandbox_port: int) -> Iterator[Demo]:
    """Both processes started, the invoices driven, the dead letter sent, the reconciler
    run, the ledger caught up; both stopped on leaving, whatever happened."""
    demo = Demo(directory, service_port, sandbox_port)
    with ExitStack() as stack:
        stack.callback(stop_processes, demo)
        require_free_ports(demo)
        migrate(demo)
        start_service(demo)
        start_sandbox(demo)
        sandbox = stack.enter_context(
            httpx.Client(base_url=demo.sandbox_url, timeout=HTTP_TIMEOUT_SECONDS)
        )
        service = stack.enter_context(
            httpx.Client(base_url=demo.service_url, timeout=HTTP_TIMEOUT_SECONDS)
        )
        create_invoices(sandbox)
        drive_invoices(sandbox)
        wait_for_webhooks(sandbox)
        send_dead_letter(demo, service)
        reconcile(demo)
        wait_for_ledger(service)
        yield demo


def urls_to_open(demo: Demo) -> str:
    service, sandbox = demo.service_url, demo.sandbox_url
    return "\n".join(
        [
            "",
            "The demo is running (no token needed: loopback clients of a ledger without",
            "LEDGER_API_TOKENS read and operate; see docs/security.md).",
            "",
            f"  console                  {service}/console",
            f"  delivery log (console)   {service}/console/deliveries?{DEAD_LETTERS_QUERY}",
            f"  invoices                 {service}/v1/invoices",
            f"  one invoice's trail      {service}/v1/invoices/DEMO-2/events",
            f"  aging report             {service}/v1/reports/aging",
            f"  status report            {service}/v1/reports/status",
            f"  the dead letter          {service}/v1/deliveries?{DEAD_LETTERS_QUERY}",
            f"  sandbox's webhooks       {sandbox}/sandbox/deliveries",
            "",
            f"Files (database, logs): {demo.directory}   Ctrl-C stops both processes.",
        ]
    )


def wait_for_interrupt(demo: Demo) -> None:
    """Until Ctrl-C or SIGTERM, or until one of the processes stops by itself."""
    try:
        while True:
            for name, process in demo.processes.items():
                if process.poll() is not None:
                    raise DemoFailed(
                        f"{name} exited {process.returncode}; see {demo.log_path(name)}"
                    )
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nStopping the sandbox and the service…", flush=True)


def interrupt_on_signals() -> None:
    """SIGINT and SIGTERM stop the demo, its processes with it. SIGINT is set explicitly: a
    shell without job control starts a background command with SIGINT ignored."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, interrupt)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.split("\n\n")[1])
    parser.add_argument("--port", type=int, default=8000, help="the service's port (default 8000)")
    parser.add_argument(
        "--sandbox-port", type=int, default=8400, help="the sandbox's port (default 8400)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the throwaway directory afterwards"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    interrupt_on_signals()
    DEMO_ROOT.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="run-", dir=DEMO_ROOT))
    keep = arguments.keep
    started = time.monotonic()
    try:
        print(f"Starting the sandbox and the ledger ({directory})…", flush=True)
        with running_demo(directory, arguments.port, arguments.sandbox_port) as demo:
            print(f"Ready in {time.monotonic() - started:.0f} s.", urls_to_open(demo), flush=True)
            wait_for_interrupt(demo)
    except KeyboardInterrupt:
        print("\nStopped before the demo was ready.", file=sys.stderr)
        return 130
    except DemoFailed as failure:
        print(f"demo: {failure}\nLogs kept in {directory}", file=sys.stderr)
        keep = True
        return 1
    finally:
        if not keep:
            shutil.rmtree(directory, ignore_errors=True)
    return 0
