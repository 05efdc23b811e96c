"""What 1,000,000 recipients of a campaign cost on AWS at list prices, and the Atlas tier their MongoDB load needs.

Priced from what a small campaign counted (offline.counting), on the mock vendor and on SES:

    python -m bench.cost [--recipients 2000]      # runs the e-mail campaign on each channel itself (a few minutes)
    python -m bench.cost --counts FILE            # prices what `python -m bench.fanout ... --counts-out FILE` wrote
    [--rate N]                                    # also size Atlas for N recipients/s, besides the measured rate
    [--mongo-uri URI]                             # with a campaign of its own: an existing MongoDB (or MONGO_URI)

Running it runs bench.fanout's e-mail campaign (5 % of the addresses suppressed) through each channel on its own
local stack, as `python -m bench.fanout --channel ses` does, and prices the counts from the campaign's POST to
COMPLETED. The counts are per recipient, so a small campaign prices a large one; the cold starts' init, which a
long campaign spreads over more recipients, is shown apart. Not priced: the idle pollers' empty receives (their
rate is the runner's, not Lambda's, and they cost the same with no campaign), CloudWatch, data transfer, and what
a real vendor charges per message (the mock vendor's own functions are deployed by the template, so they are in).
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from bench._counts import print_per_thousand, record
from bench._stack import add_mongo_option
from offline.counting import totals

RECIPIENTS = 1_000_000

# AWS's public list prices, us-east-1 (list price as of 2026-12); each the first tier, where a campaign's traffic lies.
# https://aws.amazon.com/lambda/pricing/ : duration on arm64 (the template's Architectures), first 7.5 billion GB-s.
LAMBDA_ARM_GB_SECOND = 0.0000133334
# https://aws.amazon.com/lambda/pricing/ : requests; a Function URL adds nothing of its own, its calls are these.
LAMBDA_REQUEST = 0.20 / 1_000_000
# https://aws.amazon.com/sqs/pricing/ : standard queue, past the free first million a month; each 64 KB chunk of a
# request's payload is one request.
SQS_REQUEST = 0.40 / 1_000_000
# https://aws.amazon.com/ses/pricing/ : outbound e-mail, per message to one recipient.
SES_EMAIL = 0.10 / 1000
# https://aws.amazon.com/api-gateway/pricing/ : HTTP API, first 300 million requests a month (each up to 512 KB).
HTTP_API_REQUEST = 1.00 / 1_000_000

LAMBDA_COMPUTE = "Lambda compute (arm64 GB-s)"
# (line, the figure of offline.counting.totals it prices, price per unit)
LINES = ((LAMBDA_COMPUTE, "lambda_gb_seconds", LAMBDA_ARM_GB_SECOND),
         ("Lambda requests (and Function URL calls)", "lambda_invocations", LAMBDA_REQUEST),
         ("API Gateway HTTP API requests", "api_requests", HTTP_API_REQUEST),
         ("SQS requests (64 KB chunks)", "sqs_billed_requests", SQS_REQUEST),
         ("SES e-mails", "ses_emails", SES_EMAIL))


@dataclass(frozen=True)
class AtlasTier:
    name: str
    vcpus: int
    monthly: float  # dollars, a three-node replica set running all month (730 h)
    burstable: bool = False

    @property
    def commands_per_second(self) -> float:
        # Rule of thumb (ours, not MongoDB's): a dedicated vCPU serves about 1,000 simple indexed commands a second
        # with the working set in memory; plan for half of that, leaving room for replication, index builds and
        # bursts. M10 and M20 share their vCPUs (Atlas warns that sustained load degrades them): half again.
        return self.vcpus * 500 * (0.5 if self.burstable else 1)


# https://www.mongodb.com/pricing : dedicated clusters on AWS us-east-1, list price as of 2026-12 (hourly x 730).
ATLAS_TIERS = (AtlasTier("M10", 2, 57, burstable=True), AtlasTier("M20", 2, 146, burstable=True),
               AtlasTier("M30", 2, 394), AtlasTier("M40", 4, 759), AtlasTier("M50", 8, 1460),
               AtlasTier("M60", 16, 2884))


def dollars(figures: Mapping[str, float], recipients: int) -> dict[str, float]:
    """Each line's dollars for RECIPIENTS recipients, from offline.counting.totals of a campaign of `recipients`."""
    scale = RECIPIENTS / recipients
    return {line: figures[key] * scale * price for line, key, price in LINES}


def largest(lines: Mapping[str, float]) -> str:
    return max(lines, key=lines.__getitem__)


def atlas_tier(commands_per_second: float) -> AtlasTier | None:
    """The smallest tier that carries this load by the rule of thumb; None past the largest (shard, as DESIGN says)."""
    return next((tier for tier in ATLAS_TIERS if tier.commands_per_second >= commands_per_second), None)


def atlas_line(commands_per_recipient: float, recipients_per_second: float, how: str) -> str:
    load = commands_per_recipient * recipients_per_second
    tier = atlas_tier(load)
    sized = (f"{tier.name} (${tier.monthly:,.0f}/month, up to {tier.commands_per_second:,.0f} commands/s by our rule)"
             if tier else f"more than {ATLAS_TIERS[-1].name}: shard")
    return (f"{commands_per_recipient:,.2f} commands/recipient x {recipients_per_second:,.1f} recipients/s {how} = "
            f"{load:,.0f} commands/s -> {sized}")


def report(channels: Mapping[str, Mapping[str, Any]], rate: float | None = None) -> dict[str, dict[str, float]]:
    """Prints each channel's counts per 1,000 recipients and their price per RECIPIENTS (bench._counts.record
    runs); returns the priced lines."""
    print_per_thousand({name: (run["counts"], run["recipients"]) for name, run in channels.items()})
    figures = {name: totals(run["counts"]) for name, run in channels.items()}
    priced = {name: dollars(figures[name], run["recipients"]) for name, run in channels.items()}
    print(f"cost of {RECIPIENTS:,} recipients at AWS list prices (us-east-1, list price as of 2026-12), from "
          + ", ".join(f"{run['recipients']:,} counted on {name}" for name, run in channels.items()))
    print(f"  {'':<44}" + "".join(f" {name:>12}" for name in channels))
    for line, _, _ in LINES:
        print(f"  {line:<44}" + "".join(f" {priced[name][line]:>12,.2f}" for name in channels))
    print(f"  {'total, $':<44}" + "".join(f" {sum(priced[name].values()):>12,.2f}" for name in channels))
    for name, run in channels.items():
        lines, scale = priced[name], RECIPIENTS / run["recipients"]
        top = largest(lines)
        init = figures[name]["lambda_init_gb_seconds"] * scale * LAMBDA_ARM_GB_SECOND
        print(f"  {name}: the largest line is {top} (${lines[top]:,.2f}, {lines[top] / sum(lines.values()):.0%}); "
              f"cold starts' init ${init:,.2f} of Lambda compute; not priced: the idle pollers' "
              f"{figures[name]['sqs_empty_receives']:,.0f} empty receives in this run")
    print("  Atlas is a fixed monthly cost; the tier the counted load needs:")
    for name, run in channels.items():
        per_recipient = figures[name]["mongo_commands"] / run["recipients"]
        seconds = run.get("send_seconds") or run["seconds"]
        print(f"    {name}: {atlas_line(per_recipient, run['recipients'] / seconds, 'measured (POST -> last send)')}")
        if rate:
            print(f"    {name}: {atlas_line(per_recipient, rate, 'asked (--rate)')}")
    return priced


def run_campaigns(recipients: int, mongo_uri: str | None) -> dict[str, dict[str, Any]]:
    from bench.fanout import campaign_through  # the campaign machinery loads the product's code: only when asked

    channels = {}
    for channel in ("mock", "ses"):
        print(f"  {recipients:,} recipients on {channel} ...", flush=True)
        run = campaign_through(channel, recipients, mongo_uri)
        channels[channel] = record(recipients, run.completed, run.send_phase, run.counts)
    return channels


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(prog="python -m bench.cost", description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=2000, help="of the campaign it runs (without --counts)")
    parser.add_argument("--counts", type=Path, help="a JSON file written by python -m bench.fanout --counts-out")
    parser.add_argument("--rate", type=float, help="recipients per second to size Atlas for, besides the measured")
    add_mongo_option(parser)
    args = parser.parse_args(argv)
    if args.counts:
        channels = json.loads(args.counts.read_text())["channels"]
    else:
        channels = run_campaigns(args.recipients, args.mongo_uri)
    return report(channels, args.rate)


if __name__ == "__main__":
    main()
