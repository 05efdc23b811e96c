"""What clicks on tracked links cost: recipients of a sent campaign follow its links through the local stack (the
redirect, the clicks queue, the click consumer, the roll-up), and the runner counts the work per 1,000 clicks.

    python -m bench.clicks [--recipients 2000] [--clicks 1000] [--clients 4]

Each click goes to a recipient and a link drawn at random (seeded), so some recipients click more than once and some
links twice: the counters are checked against the clicks made (recipients once in `clicked`, each click once on its
link). The redirect's time is measured at the client, through the runner's gateway (a local figure: AWS adds the
network, and an SQS SendMessage of ~10-20 ms in the region).
"""
from __future__ import annotations

import argparse
import random
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from bson import ObjectId
from pymongo import MongoClient

from bench._counts import LINES, settled_counts
from bench._stack import add_mongo_option, local_stack
from bench._table import Row, print_table
from crm.config import DEV_UNSUBSCRIBE_SECRET
from crm.db import CAMPAIGNS, INDEXES, LOGS
from crm.engagement.links import LinkTracker
from crm.models.common import utcnow
from offline.counting import totals

LINKS = ["https://shop.example.com/sale", "https://shop.example.com/coat?size=m"]
CLICK_QUEUE = "ClickQueue"


def seed(db, recipients: int) -> tuple[ObjectId, list[ObjectId]]:
    """A campaign already sent (COMPLETED: clicks come after) and its SENT logs."""
    for collection in (CAMPAIGNS, LOGS):
        db[collection].create_indexes(INDEXES[collection])
    campaign_id, now = ObjectId(), utcnow()
    db[CAMPAIGNS].insert_one({"_id": campaign_id, "name": "Clicks", "status": "COMPLETED", "links": LINKS,
                              "fanout": {"done": True}, "created_at": now,
                              "stats": {"audience": recipients, "queued": 0, "sent": recipients, "failed": 0,
                                        "skipped": 0}})
    logs = [{"_id": ObjectId(), "campaign_id": campaign_id, "customer_id": ObjectId(), "status": "SENT",
             "message": "See " + " and ".join(LINKS), "vendor_message_id": f"vm-{i}", "sent_at": now,
             "created_at": now, "updated_at": now} for i in range(recipients)]
    db[LOGS].insert_many(logs, ordered=False)
    return campaign_id, [log["_id"] for log in logs]


def run(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(prog="python -m bench.clicks", description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=2000)
    parser.add_argument("--clicks", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4, help="people clicking at once")
    add_mongo_option(parser)
    args = parser.parse_args(argv)
    # The route's throttle (PublicRateLimit, 50/s by default) would answer most of these 429: raised, as a stack
    # expecting a large campaign's clicks would raise it.
    with local_stack(count=True, mongo_uri=args.mongo_uri,
                     parameters={"PublicRateLimit": "100000", "PublicBurstLimit": "5000"}) as stack:
        client = MongoClient(stack["mongo_uri"], tz_aware=True)
        db = client[stack["env"]["MONGO_DB"]]
        campaign_id, log_ids = seed(db, args.recipients)
        # The send function's tracker with the development key the local stack signs with.
        tracker = LinkTracker(stack["url"], DEV_UNSUBSCRIBE_SECRET)
        draw = random.Random(7)
        clicks = [(draw.choice(log_ids), draw.randrange(len(LINKS))) for _ in range(args.clicks)]
        urls = [tracker.url_for(log_id, link, LINKS[link]) for log_id, link in clicks]
        runner = stack["runner"]
        before = runner.counts()
        started = time.perf_counter()
        with httpx.Client(timeout=30) as http, ThreadPoolExecutor(args.clients) as pool:
            def follow(url: str) -> float:
                sent = time.perf_counter()
                reply = http.get(url)
                assert reply.status_code == 302 and reply.headers["location"] in LINKS, reply.text
                return (time.perf_counter() - sent) * 1000
            latencies = list(pool.map(follow, urls))
        clicking_seconds = time.perf_counter() - started

        def applied() -> bool:
            """Every clicking recipient's log has its clicks, and the roll-up has counted them."""
            logs = db[LOGS]
            return (not logs.count_documents({"campaign_id": campaign_id, "pending": True})
                    and logs.count_documents({"campaign_id": campaign_id, "click_ids": {"$exists": True}})
                    == len({log for log, _ in clicks}))

        deadline = time.monotonic() + 300
        while not applied():
            assert time.monotonic() < deadline, "the clicks were not all counted in 5 minutes"
            time.sleep(0.5)
        counted_seconds = time.perf_counter() - started
        counts = settled_counts(runner, before)
        campaign = db[CAMPAIGNS].find_one({"_id": campaign_id})
        client.close()

    recipients_clicking = len({log for log, _ in clicks})
    expected_links = {str(i): {"clicks": sum(1 for _, link in clicks if link == i),
                               "recipients": len({log for log, link in clicks if link == i})}
                      for i in range(len(LINKS))}
    assert campaign["stats"]["clicked"] == recipients_clicking, campaign["stats"]
    assert campaign["link_stats"] == expected_links, (campaign["link_stats"], expected_links)
    figures = {key: value * 1000 / args.clicks for key, value in totals(counts).items()}
    p50, p95 = statistics.median(latencies), statistics.quantiles(latencies, n=20)[-1]
    print(f"clicks: {args.clicks:,} clicks by {recipients_clicking:,} of {args.recipients:,} recipients on "
          f"{len(LINKS)} links, {args.clients} at once: followed in {clicking_seconds:.1f} s, all counted "
          f"{counted_seconds:.1f} s after the first (counters checked)")
    print(f"  redirect at the client: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    print(f"  {'counted, per 1,000 clicks':<56} {'':>12}")
    for key, label in LINES.items():
        print(f"  {label:<56} {figures[key]:>12,.1f}")
    functions = counts.get("functions", {})
    print("  per function per 1,000 clicks: " + ", ".join(
        f"{name} {f.get('invocations', 0) * 1000 / args.clicks:,.1f} x, "
        f"{f.get('gb_seconds', 0) * 1000 / args.clicks:,.2f} GB-s"
        for name, f in sorted(functions.items()) if f.get("invocations")))
    return [Row("clicks", "redirect p50 (client, through the runner)", p50, "ms"),
            Row("clicks", "MongoDB commands per 1,000 clicks", figures["mongo_commands"], "commands"),
            Row("clicks", "campaign writes per 1,000 clicks", figures["campaign_writes"], "writes")]


if __name__ == "__main__":
    print_table(run())
