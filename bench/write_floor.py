"""What one log's writes cost the server, beside the raw insert of the same logs: the floor under the campaign's
POST -> COMPLETED ratio. A campaign writes each log at least five times (the fan-out's insert; the send's claim
and its message id, two updates of many logs each; the outcome; the roll-up clearing its tally), so its ratio to
the raw insert_many can be no lower than the sum of those writes' ratios, however the work is spread.

    python -m bench.write_floor [--logs 10000]
"""
from __future__ import annotations

import argparse
import time

from bson import ObjectId
from pymongo import MongoClient, UpdateOne

from bench._stack import add_mongo_option
from bench._table import Row, print_table
from crm.db import INDEXES, LOGS, in_chunks, literals, per_document
from crm.models.common import utcnow
from offline import services

RUN = 100  # logs per update, as a send message and the outcome writes take them


def _logs(count: int) -> list[dict]:
    campaign_id, now = ObjectId(), utcnow()
    return [{"campaign_id": campaign_id, "customer_id": ObjectId(), "status": "QUEUED", "vendor_message_id": None,
             "message": f"Hi Customer {i}, 20% off this weekend!",
             "to": {"name": f"Customer {i}", "email": f"c{i:07d}@example.com", "phone": None},
             "sent_at": None, "created_at": now, "updated_at": now, "due_at": now} for i in range(count)]


def _timed(write, ids: list[ObjectId]) -> float:
    """Milliseconds per log of `write` over the ids in runs of RUN."""
    started = time.perf_counter()
    for run in in_chunks(ids, RUN):
        write(run)
    return (time.perf_counter() - started) * 1000 / len(ids)


def measure(collection, count: int) -> dict[str, float]:
    collection.create_indexes(INDEXES[LOGS])
    docs = _logs(count)
    started = time.perf_counter()
    for run in in_chunks(docs, 1000):
        collection.insert_many(run, ordered=False)
    figures = {"insert_many (1,000 a call)": (time.perf_counter() - started) * 1000 / count}
    ids = [d["_id"] for d in docs]
    quarter = count // 4
    claim, sent, outcome, clear = (ids[i * quarter:(i + 1) * quarter] for i in range(4))
    figures["claim: update_many of 100 ($in)"] = _timed(lambda run: collection.update_many(
        {"_id": {"$in": run}, "status": "QUEUED"}, {"$set": {"claim": "c", "claimed_until": utcnow()}}), claim)
    figures["message ids: one update of 100 (pipeline)"] = _timed(lambda run: collection.update_many(
        {"_id": {"$in": run}, "status": "QUEUED"},
        [{"$set": {"vendor_message_id": per_document(run, [f"vm-{i}" for i in run]),
                   **literals({"sent_at": utcnow()})}}]), sent)
    figures["outcome: one update of 100 (pipeline, tally)"] = _timed(lambda run: collection.update_many(
        {"_id": {"$in": run}, "status": "QUEUED"},
        [{"$set": {**literals({"status": "SENT", "pending": True}),
                   "delivered_at": per_document(run, [utcnow()] * len(run)),
                   "tally": {"$concatArrays": [{"$ifNull": ["$tally", []]}, ["sent"]]}}}]), outcome)
    figures["roll-up: clearing 100 tallies"] = _timed(lambda run: collection.update_many(
        {"_id": {"$in": run}}, {"$unset": {"tally": "", "pending": ""}}), outcome)
    figures["for comparison: 100 updates of one log each (bulk)"] = _timed(lambda run: collection.bulk_write(
        [UpdateOne({"_id": i, "status": "QUEUED"}, {"$set": {"status": "SENT"}}) for i in run], ordered=False), clear)
    return figures


def run(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(prog="python -m bench.write_floor", description=__doc__.splitlines()[0])
    parser.add_argument("--logs", type=int, default=10_000)
    add_mongo_option(parser)
    args = parser.parse_args(argv)
    if args.logs < 400:
        parser.error("--logs: at least 400 (four runs of 100)")
    server = None if args.mongo_uri else services.MongoServer(":memory:")
    try:
        with MongoClient(args.mongo_uri or server.uri) as client:
            name = f"bench_floor_{ObjectId()}"
            try:
                figures = measure(client[name][LOGS], args.logs)
            finally:
                client.drop_database(name)
    finally:
        if server:
            server.stop()
    insert = figures["insert_many (1,000 a call)"]
    print(f"write floor: {args.logs:,} logs, ms per log (and / the raw insert)")
    for label, ms in figures.items():
        print(f"  {label:<52} {ms:>7.3f} ms {ms / insert:>7.2f}x")
    path = [ms for label, ms in figures.items() if not label.startswith("for comparison")]
    floor = sum(path) / insert
    print(f"  a campaign's writes per log, summed: {sum(path):.3f} ms, {floor:.2f}x the raw insert (the floor under "
          "POST -> COMPLETED / raw insert, before any read, transaction, queue or vendor)")
    return [Row("write floor", "a log's campaign writes, summed", sum(path), "ms/log", insert, "its raw insert")]


if __name__ == "__main__":
    print_table(run())
