"""The runner's counts around one campaign (offline.counting), per 1,000 recipients, and the JSON bench.cost reads."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Mapping

from offline.counting import difference, totals
from offline.runner import OfflineRunner

LINES = {
    "mongo_commands": "MongoDB commands",
    "transactions": "  transactions (commitTransaction)",
    "campaign_writes": "  writes to the campaign document",
    "sqs_requests": "SQS requests (functions and pollers)",
    "sqs_empty_receives": "  of which empty receives (idle pollers)",
    "sqs_billed_requests": "SQS billed requests (64 KB chunks, not the empty receives)",
    "lambda_invocations": "Lambda invocations",
    "lambda_gb_seconds": "Lambda GB-seconds",
    "lambda_init_gb_seconds": "  of which cold starts' init",
    "ses_emails": "SES e-mails (SendEmail)",
    "api_requests": "API Gateway requests",
    "function_url_requests": "Function URL requests",
}


def settled_counts(runner: OfflineRunner, before: Mapping[str, Any], quiet: float = 2.0,
                   timeout: float = 30.0) -> dict[str, Any]:
    """What was counted since `before`, once no invocation has been under way for `quiet` seconds: a worker's
    counts come with its reply, so an invocation still running has not reported yet. A scheduled function's are not
    waited for: the roll-up runs for a minute at a time while a campaign is recent, so the runner is never quiet of
    it (and what a schedule does on its own clock is not what the measured work asked for)."""
    deadline, quiet_since = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        if runner.in_flight(scheduled=False):
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= quiet:
            break
        time.sleep(0.1)
    return difference(runner.counts(), before)


def leave_out(counts: Mapping[str, Any], function: str, invocations: int) -> dict[str, Any]:
    """The counts without `invocations` of `function` that a benchmark made itself (a probe of its reply time), each of
    that function's figures taken down by their share; what its messages cost their consumer stays in (a little)."""
    functions = dict(counts.get("functions", {}))
    figures = functions.get(function)
    if figures and figures.get("invocations"):
        kept = max(0.0, 1 - invocations / figures["invocations"])
        functions[function] = {key: value * kept if isinstance(value, (int, float)) else value
                               for key, value in figures.items()}
    return {**counts, "functions": functions}


def per_thousand(counts: Mapping[str, Any], recipients: int) -> dict[str, float]:
    return {key: value * 1000 / recipients for key, value in totals(counts).items()}


def print_per_thousand(columns: Mapping[str, tuple[Mapping[str, Any], int]]) -> None:
    """columns: a heading to (counts, recipients) each; one line per figure, one column per heading."""
    figures = {heading: per_thousand(counts, recipients) for heading, (counts, recipients) in columns.items()}
    print(f"  {'counted, per 1,000 recipients':<56}" + "".join(f" {heading:>12}" for heading in columns))
    for key, label in LINES.items():
        print(f"  {label:<56}" + "".join(f" {figures[heading][key]:>12,.1f}" for heading in columns))
    for heading, (counts, recipients) in columns.items():
        busiest = sorted(counts.get("functions", {}).items(), key=lambda item: -item[1].get("gb_seconds", 0))
        print(f"  {heading}, per function per 1,000: " + ", ".join(
            f"{name} {f.get('invocations', 0) * 1000 / recipients:,.1f} x, "
            f"{f.get('gb_seconds', 0) * 1000 / recipients:,.2f} GB-s"
            for name, f in busiest if f.get("invocations")))


def record(recipients: int, seconds: float, send_seconds: float, counts: Mapping[str, Any]) -> dict[str, Any]:
    """One channel's run as bench.cost reads it: seconds is POST -> COMPLETED, send_seconds POST -> the last message
    handed to the channel (the measured throughput: completion also waits for receipts and the reconciler)."""
    return {"recipients": recipients, "seconds": seconds, "send_seconds": send_seconds, "totals": totals(counts),
            "counts": counts}


def write(path: Path, channels: Mapping[str, Mapping[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"channels": channels}, indent=2) + "\n")
    print(f"  counts written to {path} (python -m bench.cost --counts {path})")
