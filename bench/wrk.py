"""Driving wrk (https://github.com/wg/wrk) with pre-signed, distinct deliveries.

wrk is far cheaper per request than a Python client, which matters on two cores where the
load generator's CPU is taken from the servers it measures. Each round gets a file of
deliveries (one ``signature<TAB>body`` per line); the Lua script splits the lines between
wrk's threads so that no delivery is sent twice, counts statuses, and prints one JSON line.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

WRK = "wrk"
RESULT_MARKER = "WRK_JSON "

LUA_SCRIPT = r"""
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local path, share = args[1], tonumber(args[2])
  event_type = args[3]
  deliveries = {}
  local n = 0
  if path ~= nil and path ~= "" then
    for line in io.lines(path) do
      if n % share == id then
        local tab = line:find("\t", 1, true)
        deliveries[#deliveries + 1] = {line:sub(1, tab - 1), line:sub(tab + 1)}
      end
      n = n + 1
    end
  end
  index, sent, acknowledged, other, wrapped = 0, 0, 0, 0, 0
end

function request()
  sent = sent + 1
  if #deliveries == 0 then
    return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, "{}")
  end
  index = index + 1
  if index > #deliveries then
    index, wrapped = 1, 1
  end
  local delivery = deliveries[index]
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["v-c-signature"] = delivery[1],
    ["V-C-Event-Type"] = event_type,
  }, delivery[2])
end

function response(status, headers, body)
  if status == 200 then
    acknowledged = acknowledged + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local sent_, acknowledged_, other_, wrapped_ = 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    sent_ = sent_ + thread:get("sent")
    acknowledged_ = acknowledged_ + thread:get("acknowledged")
    other_ = other_ + thread:get("other")
    wrapped_ = math.max(wrapped_, thread:get("wrapped"))
  end
  local errors = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d,'
    .. ' "p99_us": %d, "max_us": %d, "sent": %d, "acknowledged": %d, "other": %d,'
    .. ' "wrapped": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, sent_, acknowledged_, other_, wrapped_,
    errors.connect + errors.read + errors.write + errors.timeout))
end
"""


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: completed requests over its duration, latency percentiles, statuses."""

    requests: int
    duration_seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    sent: int  # requests written, including those still unanswered when wrk stopped
    acknowledged: int  # 200 responses
    other: int  # any other status
    wrapped: bool  # the deliveries ran out and were sent again
    socket_errors: int

    @property
    def throughput(self) -> float:
        return self.requests / self.duration_seconds if self.duration_seconds else 0.0


def parse_wrk_output(output: str) -> WrkResult:
    """The figures the Lua ``done()`` printed; ValueError if wrk printed none."""
    for line in output.splitlines():
        if line.startswith(RESULT_MARKER):
            figures = json.loads(line[len(RESULT_MARKER) :])
            return WrkResult(
                requests=figures["requests"],
                duration_seconds=figures["duration_us"] / 1e6,
                p50_ms=figures["p50_us"] / 1000,
                p90_ms=figures["p90_us"] / 1000,
                p99_ms=figures["p99_us"] / 1000,
                max_ms=figures["max_us"] / 1000,
                sent=figures["sent"],
                acknowledged=figures["acknowledged"],
                other=figures["other"],
                wrapped=bool(figures["wrapped"]),
                socket_errors=figures["socket_errors"],
            )
    raise ValueError(f"wrk printed no {RESULT_MARKER.strip()} line:\n{output}")


def require_wrk() -> str:
    """wrk's path, or exit 2 naming the package to install."""
    path = shutil.which(WRK)
    if path is None:
        print(
            "wrk is not installed: install the package wrk (apt-get install wrk)", file=sys.stderr
        )
        raise SystemExit(2)
    return path


def write_deliveries(
    path: Path, count: int, make_delivery: Callable[[], tuple[bytes, dict[str, str]]]
) -> None:
    """``count`` distinct signed deliveries, one ``signature<TAB>body`` line each."""
    with path.open("wb") as file:
        for _ in range(count):
            body, headers = make_delivery()
            file.write(headers["v-c-signature"].encode() + b"\t" + body + b"\n")


def run_wrk(
    url: str,
    script: Path,
    *,
    deliveries: Path | None,
    event_type: str,
    threads: int,
    connections: int,
    duration_seconds: float,
) -> WrkResult:
    command = [
        require_wrk(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration_seconds))}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        url,
        "--",
        str(deliveries or ""),
        str(threads),
        event_type,
    ]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"wrk failed ({completed.returncode}): {completed.stderr.strip()}")
    return parse_wrk_output(completed.stdout)


@dataclass(frozen=True)
class ExactlyOnce:
    """What the database holds against what the load generators were told."""

    acknowledged: int  # 200s received
    sent: int  # deliveries written to the server, each a distinct notification
    inbox_rows: int
    distinct_notifications: int
    events: int
    max_unanswered: int  # connections times the timed runs: what can be in flight at cutoffs

    @property
    def unanswered_at_cutoff(self) -> int:
        """Deliveries stored whose response wrk did not wait for when its time was up."""
        return self.inbox_rows - self.acknowledged

    @property
    def holds(self) -> bool:
        """Every acknowledged delivery stored, none twice, one event each; at most the
        deliveries in flight when a timed run stopped are stored without a 200 seen."""
        return (
            self.inbox_rows == self.distinct_notifications == self.events
            and self.acknowledged <= self.inbox_rows <= self.sent
            and self.unanswered_at_cutoff <= self.max_unanswered
        )

    def describe(self) -> str:
        verdict = "holds" if self.holds else "FAILS"
        return (
            f"exactly once {verdict}: {self.acknowledged} acknowledged, {self.sent} sent,"
            f" {self.inbox_rows} inbox rows ({self.distinct_notifications} distinct"
            f" notifications), {self.events} events; {self.unanswered_at_cutoff} stored"
            " while their response was in flight when a timed run stopped"
            f" (at most {self.max_unanswered})"
        )


PGBENCH_TPS = re.compile(r"tps = ([0-9.]+) \(without initial connection time\)")


def parse_pgbench_tps(output: str) -> float:
    match = PGBENCH_TPS.search(output)
    if match is None:
        raise ValueError(f"pgbench printed no tps:\n{output}")
    return float(match.group(1))
