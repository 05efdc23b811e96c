"""The v3 backfill: every customer's activity (crm.rules.activity) rebuilt once from the orders and communication logs
that releases before v3 wrote without it, so that behaviour rules see what happened before the upgrade.

The deploy's migration asks for it (`request`); the reconciler does it (`run`, every minute, for what is left of its
invocation), a page of customers at a time in `_id` order from the cursor kept in the migrations collection, until
a page comes back short. It starts SETTLE after it was first asked for: for a while after the deploy a container of
the release before may still record orders and roll up logs without writing any activity, and the pass has to come
after the last of those.

Safe to run twice, to be cut off anywhere, and beside the consumers' own writes (which apply each order and each
log's change exactly once, so nothing here may add to them):
- A customer's `activity.orders` is rebuilt from the `orders` collection (the source of truth: an order's `date`
  decides its day; days MAX_DAYS or more ago are left out, as every write leaves them out), never added to. The write
  is conditioned on the buckets as they were read *before* the orders were read: the order consumer records an
  order and its bucket in one transaction, so an order recorded after that read makes the write miss (the customer
  is then read and rebuilt again), and one recorded after the write adds itself to the rebuilt buckets.
- Its `activity.messages` gains the entries of its logs (SENT logs' `sent_at`, `events.opened/clicked/converted`;
  control logs none), merged as `message_activity_writes` merges them (an entry per campaign, each day kept at its
  earliest), under the same condition on what was read. Entries are not limited to MAX_DAYS: the campaign rule has
  no window, and the roll-up keeps a campaign's entry for good.
- What roll-ups of the release before did to v3's tallies in those minutes is put right too (crm.engagement.upgrade):
  each page's stranded revenue flagged for the roll-up, and after the last page the campaigns' misfiled counters.
- A customer whose activity already says what its orders and logs say (a second run, or one whose history all came
  after the upgrade) is not written. The cursor moves only after its page's writes, and only from where this run
  found it: a run cut off redoes its last page, rebuilding the same; a run overtaken by another stops.

Cost per 1,000 customers (one page): one batch of the customers' `_id` cursor (their activity only); ten `$in`
reads of 100 customers each on the orders (index `customer_newest`) and ten on the logs (index `customer`), which
fetch every order and log of those customers; ten updates flagging stranded revenue (crm.engagement.upgrade), on
the logs' `customer` index; one unordered bulk write of at most one update per customer (none
for a customer with no orders or messages, or one already right); one write of the cursor. A page whose
customers changed under it reads and writes those customers again. `python -m bench.backfill` measures it.
"""
from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice
from typing import Any, Iterable, Mapping

from bson import ObjectId
from pymongo import UpdateOne
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError, PyMongoError

from crm.db import CUSTOMERS, LOGS, MIGRATIONS, ORDERS, in_chunks
from crm.engagement import upgrade
from crm.models.common import utcnow
from crm.rules.activity import MESSAGES, daily_buckets, message_days

JOB = "v3-activity-backfill"
PAGE = 1000
# Longer than any function of the release before can run (Lambda's limit is 15 minutes), with time for the stack
# update to reach every function after the migration ran.
SETTLE = timedelta(minutes=20)
# A page whose customers keep changing under it this often is left for the next run (the cursor stays before it).
MAX_TRIES = 10
ACTIVITY_FIELDS = {"activity.orders": 1, "activity.messages": 1}
ORDER_FIELDS = {"customer_id": 1, "date": 1, "amount": 1, "items.sku": 1}
LOG_FIELDS = {"customer_id": 1, "campaign_id": 1, "status": 1, "reason": 1, "sent_at": 1, "events": 1}
ORDER_BUCKETS = "activity.orders"
# The orders or logs of a hundred customers come back in one reply, not a first batch of 101 and the rest.
READ_BATCH = 10_000


@dataclass
class Progress:
    """What one run did, for the reconciler's log line and for tests."""
    customers: int = 0
    written: int = 0
    read_again: int = 0
    done: bool = False


class _Contended(Exception):
    """The page's customers kept changing under it."""


def request(db: Database, now: datetime) -> dict[str, Any]:
    """Asks for the backfill (once: a later call changes nothing); its job document."""
    try:
        db[MIGRATIONS].update_one({"_id": JOB}, {"$setOnInsert": {
            "requested_at": now, "start_at": now + SETTLE, "after": None, "done": False}}, upsert=True)
    except DuplicateKeyError:
        pass  # asked for at the same moment by another run
    return db[MIGRATIONS].find_one({"_id": JOB})


def run(db: Database, deadline: float, max_pages: int | None = None) -> Progress:
    """Pages of customers from the stored cursor until done, `deadline` (seconds since the epoch; a page starts only
    if one as long as the longest so far fits), or `max_pages`; asks for the backfill if nobody has."""
    job = db[MIGRATIONS].find_one({"_id": JOB}) or request(db, utcnow())
    progress = Progress(done=job["done"])
    if job["done"] or utcnow() < job["start_at"]:
        return progress
    after, longest, pages = job["after"], 0.0, 0
    customers = db[CUSTOMERS].find({} if after is None else {"_id": {"$gt": after}},
                                   ACTIVITY_FIELDS).sort("_id", 1).batch_size(PAGE)
    try:
        while (max_pages is None or pages < max_pages) and time.time() + longest * 1.5 < deadline:
            started = time.time()
            page = list(islice(customers, PAGE))
            written, read_again = rebuild(db, page)
            upgrade.flag_stranded_revenue(db, [customer["_id"] for customer in page])
            last, page_end = len(page) < PAGE, page[-1]["_id"] if page else after
            if last:
                upgrade.refile_counters(db)
            moved = db[MIGRATIONS].update_one({"_id": JOB, "after": after, "done": False}, {"$set": {
                "after": page_end, "done": last, "updated_at": utcnow()}})
            if not moved.modified_count:
                break  # another run moved the cursor first: it goes on from there
            after, pages, longest = page_end, pages + 1, max(longest, time.time() - started)
            progress.customers += len(page)
            progress.written += written
            progress.read_again += read_again
            progress.done = last
            if last:
                break
    except _Contended:
        pass  # the cursor stays before the page: the next run does it again
    except PyMongoError as exc:
        if not exc.timeout:
            raise  # a page cut off by the invocation's time is done again by the next run
    finally:
        customers.close()
    return progress


def rebuild(db: Database, customers: list[Mapping[str, Any]]) -> tuple[int, int]:
    """These customers' activity made to say what their orders and logs say; each customer as read (its `_id` and
    `activity`), read before its orders and logs are. How many customers it wrote, and how many it read again
    because they changed under it."""
    written = read_again = 0
    for _ in range(MAX_TRIES):
        writes = _writes(db, customers, utcnow())
        if not writes:
            return written, read_again
        result = db[CUSTOMERS].bulk_write([write for _, write in writes], ordered=False)
        written += result.modified_count
        if result.matched_count == len(writes):
            return written, read_again
        # Which ones missed is not told: every customer written is read again; those that took the write or are
        # right already are not written a second time.
        customers = []
        for chunk in in_chunks([customer_id for customer_id, _ in writes]):
            customers += db[CUSTOMERS].find({"_id": {"$in": chunk}}, ACTIVITY_FIELDS)
        read_again += len(writes)
    raise _Contended


def _writes(db: Database, customers: list[Mapping[str, Any]], now: datetime) -> list[tuple[ObjectId, UpdateOne]]:
    ids = [customer["_id"] for customer in customers]
    orders: dict[ObjectId, list[dict]] = defaultdict(list)
    logs: dict[ObjectId, list[dict]] = defaultdict(list)
    for chunk in in_chunks(ids):
        for order in db[ORDERS].find({"customer_id": {"$in": chunk}}, ORDER_FIELDS).batch_size(READ_BATCH):
            orders[order["customer_id"]].append(order)
        for log in db[LOGS].find({"customer_id": {"$in": chunk}}, LOG_FIELDS).batch_size(READ_BATCH):
            logs[log["customer_id"]].append(log)
    writes = []
    for customer in customers:
        stored = customer.get("activity") or {}
        condition: dict[str, Any] = {"_id": customer["_id"]}
        change: dict[str, Any] = {}
        buckets = _buckets(orders[customer["_id"]], now)
        if not _same_buckets(stored.get("orders") or [], buckets):
            condition[ORDER_BUCKETS] = _as_read(stored.get("orders"))
            change[ORDER_BUCKETS] = buckets
        entries = merged_messages(stored.get("messages") or [], logs[customer["_id"]])
        if entries != (stored.get("messages") or []):
            condition[MESSAGES] = _as_read(stored.get("messages"))
            change[MESSAGES] = entries
        if change:
            writes.append((customer["_id"], UpdateOne(condition, {"$set": change})))
    return writes


def _as_read(value: list | None) -> Any:
    """A condition that the field still holds what was read: the same array (an equality on an array is exact,
    element order and field order included), or still no field."""
    return {"$exists": False} if value is None else value


def _buckets(orders: list[dict], now: datetime) -> list[dict[str, Any]]:
    # In a fixed order: a second run adds the amounts in the same order and finds the same sums.
    ordered = sorted(orders, key=lambda order: (order["date"], order["_id"]))
    return daily_buckets(((order["date"], order["amount"], [item["sku"] for item in order.get("items") or []])
                          for order in ordered), now)


def _same_buckets(stored: list[Mapping[str, Any]], rebuilt: list[Mapping[str, Any]]) -> bool:
    """The same days, counts and SKUs, and sums equal but for rounding (the consumer added them in another order)."""
    def by_day(buckets: Iterable[Mapping[str, Any]]) -> dict[int, tuple]:
        return {b["d"]: (b.get("n"), b.get("cn"), frozenset(b.get("skus") or ()), b.get("s"), b.get("cs"))
                for b in buckets}

    old, new = by_day(stored), by_day(rebuilt)
    return len(old) == len(stored) and old.keys() == new.keys() and all(
        old[d][:3] == new[d][:3] and all(isinstance(a, (int, float)) and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
                                         for a, b in zip(old[d][3:], new[d][3:])) for d in old)


def merged_messages(stored: list[Mapping[str, Any]], logs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The entries with these logs' days merged in, as `message_activity_writes` would leave them: a campaign's entry
    appended if there is none, else each of its days kept at the earlier."""
    entries = [dict(entry) for entry in stored]
    by_campaign = {entry["c"]: entry for entry in entries}
    for log in sorted(logs, key=lambda log: log["_id"]):
        days = message_days(log)
        if not days:
            continue
        campaign = ObjectId(log["campaign_id"])
        entry = by_campaign.get(campaign)
        if entry is None:
            entry = by_campaign[campaign] = {"c": campaign}
            entries.append(entry)
        for key, day in days.items():
            entry[key] = min(entry.get(key, day), day)
    return entries
