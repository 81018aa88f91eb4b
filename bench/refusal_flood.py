"""Valid acknowledgements while refused requests flood the receiver (CPU amplification).

Each flood request names the real keyId with a fresh ``t`` and a wrong ``sig``, and carries a
``payloads`` field of numbers: the body most expensive to re-serialise in JavaScript's form.
Two floods, each of 8 connections back to back: 1 MB bodies (beyond the payload form's size
bound: only the raw form is checked) and 250 KB bodies (within it: every one is parsed and
re-serialised, in the payload-form worker process). The service as configured by default is
measured without a flood (the baseline) and under each; with ``--unbounded``, also a service
whose bound is raised above 1 MB. For each, the p50 and p99 of valid deliveries'
acknowledgements. Usage: ``python -m bench.refusal_flood --duration 15``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import platform
import secrets
import sys
import time
from datetime import UTC, datetime

from bench.harness import (
    KEY_ID,
    PATH,
    RESULTS_DIRECTORY,
    free_port,
    migrated_database,
    server,
    signed_delivery,
)
from bench.load import LoadResult, run_load, run_paced_load

FLOOD_BODY_BYTES = (1_000_000, 250_000)
VALID_RATE_PER_SECOND = 50.0
VALID_CONNECTIONS = 4


def refused_delivery(body_bytes: int) -> tuple[bytes, dict[str, str]]:
    numbers = ",".join(["1.5"] * (body_bytes // 4 - 30))
    body = f'{{"payloads":[{{"data":{{"invoiceNumber":"X","n":[{numbers}]}}}}]}}'.encode()
    wrong = base64.b64encode(secrets.token_bytes(32)).decode()
    return body, {
        "Content-Type": "application/json",
        "v-c-signature": f"t={int(time.time() * 1000)};keyId={KEY_ID};sig={wrong}",
    }


async def measure(
    port: int, duration_seconds: float, flood_connections: int, flood_body_bytes: int = 0
) -> dict[str, object]:
    valid = run_paced_load(
        "127.0.0.1", port, PATH, signed_delivery,
        rate_per_second=VALID_RATE_PER_SECOND, duration_seconds=duration_seconds,
        connections=VALID_CONNECTIONS,
    )  # fmt: skip
    if flood_connections:
        flood = run_load(
            "127.0.0.1", port, PATH, lambda: refused_delivery(flood_body_bytes),
            connections=flood_connections, duration_seconds=duration_seconds,
        )  # fmt: skip
        valid_result, flood_result = await asyncio.gather(valid, flood)
    else:
        valid_result, flood_result = await valid, LoadResult()
    return {
        "valid_p50_ms": round(valid_result.percentile_ms(0.5), 1),
        "valid_p99_ms": round(valid_result.percentile_ms(0.99), 1),
        "valid_statuses": valid_result.statuses,
        "refused_per_second": round(flood_result.throughput, 1),
        "refused_statuses": flood_result.statuses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--flood-connections", type=int, default=8)
    parser.add_argument(
        "--unbounded", action="store_true", help="also a service with no payload-form bound"
    )
    arguments = parser.parse_args()
    results: dict[str, object] = {}
    services: list[tuple[str, int | None]] = [("payload form bounded (default)", None)]
    if arguments.unbounded:
        services.append(("payload form unbounded", 2 * max(FLOOD_BODY_BYTES)))
    with migrated_database("refusal") as (_, environment):
        for label, payload_form_max_bytes in services:
            port = free_port()
            variables = {**environment, "LEDGER_PROJECTOR_ENABLED": "false"}
            if payload_form_max_bytes is not None:
                variables["LEDGER_WEBHOOK_PAYLOAD_FORM_MAX_BYTES"] = str(payload_form_max_bytes)
            command = [sys.executable, "-m", "service.fronts.cli", "serve", "--port", str(port)]
            runs: dict[str, object] = {}
            with server(command, port, variables):
                runs["baseline"] = asyncio.run(measure(port, arguments.duration, 0))
                print(f"{label}, baseline: {runs['baseline']}", flush=True)
                for body_bytes in FLOOD_BODY_BYTES:
                    run = asyncio.run(
                        measure(port, arguments.duration, arguments.flood_connections, body_bytes)
                    )
                    runs[f"under a flood of {body_bytes} B bodies"] = run
                    print(f"{label}, flood of {body_bytes} B bodies: {run}", flush=True)
            results[label] = runs
    RESULTS_DIRECTORY.mkdir(exist_ok=True)
    output = RESULTS_DIRECTORY / f"refusal-flood-{datetime.now(UTC):%Y-%m-%d}.json"
    output.write_text(
        json.dumps(
            {"machine": platform.platform(), "arguments": vars(arguments), "results": results},
            indent=2,
        )
    )
    print(f"written to {output}")


if __name__ == "__main__":
    main()
