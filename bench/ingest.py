"""Customers/second through the whole system (API -> SQS -> consumer -> MongoDB) beside raw pymongo.

    python -m bench.ingest [--customers 100000] [--batch 1000] [--clients 4]
"""
from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from pymongo import IndexModel, MongoClient, UpdateOne

from bench._stack import add_mongo_option, local_stack
from bench._table import Row
from crm.db import CUSTOMERS, INDEXES


def customers(count: int) -> list[dict]:
    return [{"name": f"Customer {i}", "email": f"customer{i:07d}@example.com", "phone": "+1 555 0100",
             "spend": float(i % 5000), "visits": i % 40, "last_active": "2026-10-01T12:00:00Z"} for i in range(count)]


def end_to_end(url: str, mongo_uri: str, db_name: str, docs: list[dict], batch: int, clients: int,
               sqs, dead_letter_url: str, stall_seconds: float = 120) -> float:
    with httpx.Client(base_url=url, timeout=60) as http:
        token = http.post("/api/auth/dev-token", json={"email": "bench@example.com"}).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    batches = [docs[i:i + batch] for i in range(0, len(docs), batch)]
    collection = MongoClient(mongo_uri)[db_name]["customers"]

    def post(chunk: list[dict]) -> None:
        with httpx.Client(base_url=url, timeout=60, headers=headers) as http:
            reply = http.post("/api/customers", json={"customers": chunk})
            reply.raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(post, batches))
    accepted = time.perf_counter() - started
    print(f"  API accepted all {len(docs):,} in {accepted:.1f} s ({len(docs) / accepted:,.0f}/s)", flush=True)
    count, last_count, last_change = 0, -1, time.monotonic()
    while count < len(docs):
        time.sleep(0.25)
        count = collection.estimated_document_count()
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        elif time.monotonic() - last_change > stall_seconds:
            dead = sqs.get_queue_attributes(QueueUrl=dead_letter_url, AttributeNames=["ApproximateNumberOfMessages"])
            raise SystemExit(f"stalled at {count:,} customers; dead-lettered messages: "
                             f"{dead['Attributes']['ApproximateNumberOfMessages']} (see .local/bench-runner.log)")
    elapsed = time.perf_counter() - started
    assert collection.count_documents({}) == len(docs)
    return len(docs) / elapsed


def raw_upserts(mongo_uri: str, db_name: str, docs: list[dict], batch: int, indexes: list) -> float:
    collection = MongoClient(mongo_uri)[db_name]["customers"]
    collection.create_indexes(indexes)
    started = time.perf_counter()
    for i in range(0, len(docs), batch):
        collection.bulk_write([UpdateOne({"email": d["email"]}, {"$set": d}, upsert=True)
                               for d in docs[i:i + batch]], ordered=False)
    return len(docs) / (time.perf_counter() - started)


def run(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--consumers", type=int, default=2, help="concurrent pollers per queue")
    add_mongo_option(parser)
    args = parser.parse_args(argv)
    docs = customers(args.customers)
    with local_stack(max_consumers=args.consumers, mongo_uri=args.mongo_uri) as stack:
        print(f"ingest: {args.customers:,} customers, batches of {args.batch}, {args.clients} clients", flush=True)
        system = end_to_end(stack["url"], stack["mongo_uri"], stack["env"]["MONGO_DB"], docs, args.batch, args.clients,
                            stack["sqs"], stack["queues"]["CustomerIngestDLQ"].url)
        # Named after the stack's database, so that a run on an existing server (--mongo-uri) drops them with it.
        bare = raw_upserts(stack["mongo_uri"], f"{stack['env']['MONGO_DB']}_raw_email_only", docs, args.batch,
                           [IndexModel("email", unique=True)])
        indexed = raw_upserts(stack["mongo_uri"], f"{stack['env']['MONGO_DB']}_raw_indexed", docs, args.batch,
                              INDEXES[CUSTOMERS])
    print(f"  {'end to end (API -> SQS -> consumer -> MongoDB)':<58} {system:>8,.0f} customers/s")
    print(f"  {'baseline: raw pymongo bulk upsert, unique e-mail index':<58} {bare:>8,.0f} customers/s")
    print(f"  {'baseline: raw pymongo bulk upsert, the customers indexes':<58} {indexed:>8,.0f} customers/s")
    print(f"  ratio end-to-end / raw (e-mail index only): {system / bare:.2f}")
    print(f"  ratio end-to-end / raw (same indexes):      {system / indexed:.2f}")
    return [Row("ingest", f"{args.customers:,} customers end to end", system, "customers/s", indexed,
                "raw bulk upsert, same indexes"),
            Row("ingest", f"{args.customers:,} customers end to end", system, "customers/s", bare,
                "raw bulk upsert, e-mail index only")]


if __name__ == "__main__":
    run()
