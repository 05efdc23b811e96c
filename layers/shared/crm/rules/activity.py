"""A customer's behaviour over time, rolled up on the customer document for the behaviour rules (API.md "Rules v3")
to read, and the writers that keep it.

Layout, in the customers collection (days are UTC day numbers: whole days since 1970-01-01, `day_number`):

    activity.orders:   [{"d": <day>, "n": <orders placed that day>, "s": <their amounts' sum>,
                         "skus": [<the SKUs they held, each once>],
                         "cn": <orders placed that day and on every later one>, "cs": <their amounts' sum>}, ...]
        At most one bucket a day. Buckets of days MAX_DAYS or more before the day of a write are dropped by that
        write: no rule's window reaches them. Written by the order consumer inside the transaction that records the
        orders (crm.services.orders), which applies each order exactly once however often it is delivered.
        `cn`/`cs` are running totals from the newest day back, so the orders of a window (every day from its first
        on) are the `cn` of its earliest bucket, its largest: "more than 5 orders in the last 30 days" is "a bucket
        with d > today - 30 and cn > 5": a condition on one array element, checked on the documents the day index
        finds, not a sum computed over each of them.

    activity.messages: [{"c": <campaign ObjectId>, "r": <day sent>, "o": <day first opened>,
                         "k": <day first clicked>, "v": <day first converted>}, ...]
        One entry per campaign that messaged the customer; a key is absent until that happened. Written by
        `message_activity_writes`, which may be applied any number of times, in any order, also at the same time:
        each is one update of the customer document that appends the campaign's entry if there is none and
        otherwise moves each of its days only to an earlier one, so every application leaves the same entry.

Every entry is small and a customer has at most one per day (orders) or per campaign (messages), so a rule reads one
document per customer: the compiled filter (crm.rules.windows) finds the customers with something in the window
through the multikey indexes on `activity.orders.d`, `activity.orders.skus` and
`activity.messages.c/r/o/k`.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from bson import ObjectId
from pymongo import UpdateOne

ORDERS = "activity.orders"
MESSAGES = "activity.messages"
# The longest window a rule may name, in days: activity older than that is never read.
MAX_DAYS = 730
# A log's moments, by the key of the message entry that records its day.
MESSAGE_DAYS = {"r": "sent_at", "o": "opened", "k": "clicked", "v": "converted"}
# A control recipient's log (SKIPPED, reason control) records nothing: no message reached them, and their orders
# count for the control group, not for the campaign.
CONTROL_REASON = "control"
SENT = "SENT"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def day_number(moment: datetime) -> int:
    """The UTC calendar day of a moment, as whole days since 1970-01-01 (a naive moment is read as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - _EPOCH).days


def daily_buckets(orders: Iterable[tuple[datetime, float, Iterable[str]]], now: datetime) -> list[dict[str, Any]]:
    """One bucket per UTC day of these orders (date, amount, SKUs), newest first, days within MAX_DAYS of `now`
    only; `cn`/`cs` count these orders alone."""
    oldest = day_number(now) - MAX_DAYS
    buckets: dict[int, dict[str, Any]] = {}
    for date, amount, skus in orders:
        day = day_number(date)
        if day <= oldest:
            continue
        bucket = buckets.setdefault(day, {"d": day, "n": 0, "s": 0.0, "skus": {}})
        bucket["n"] += 1
        bucket["s"] += amount
        bucket["skus"].update(dict.fromkeys(skus))
    newest_first, count, total = [], 0, 0.0
    for day in sorted(buckets, reverse=True):
        bucket = buckets[day]
        count, total = count + bucket["n"], total + bucket["s"]
        newest_first.append({**bucket, "skus": list(bucket["skus"]), "cn": count, "cs": total})
    return newest_first


def orders_activity(orders: Iterable[tuple[datetime, float, Iterable[str]]], now: datetime) -> dict[str, Any]:
    """An update-pipeline expression for `activity.orders`: the stored buckets with these new orders (date, amount,
    SKUs) added, one bucket a day, those older than MAX_DAYS dropped. Not idempotent by itself: the caller applies
    each order once (the order consumer's transaction does).

    The running totals of the union at a day are the stored buckets' at that day plus the new ones': each side's
    largest `cn` among its buckets of that day or later (0 if none). A stored bucket has its own; a new day's is
    looked up among the stored buckets, and the new ones' among the few new buckets: the work grows with the
    stored buckets times the new days, not with the stored buckets squared."""
    fresh = daily_buckets(orders, now)
    days = [b["d"] for b in fresh]
    kept = {"$filter": {"input": {"$ifNull": [f"${ORDERS}", []]},
                        "cond": {"$gt": ["$$this.d", day_number(now) - MAX_DAYS]}}}

    def running(buckets: Any, total: str, day: str) -> dict[str, Any]:
        """The largest `total` (cn or cs) among these buckets of `day` or later; 0 if none."""
        later = {"$filter": {"input": buckets, "as": "b", "cond": {"$gte": ["$$b.d", day]}}}
        return {"$max": [0, {"$max": {"$map": {"input": later, "as": "b", "in": f"$$b.{total}"}}}]}

    stored = {"$map": {
        "input": {"$filter": {"input": "$$kept", "as": "old", "cond": {"$not": [{"$in": ["$$old.d", days]}]}}},
        "as": "old", "in": {"$mergeObjects": ["$$old", {
            total: {"$add": [f"$$old.{total}", running({"$literal": fresh}, total, "$$old.d")]}
            for total in ("cn", "cs")}]}}}
    same_day = {"$arrayElemAt": [{"$filter": {"input": "$$kept", "as": "old", "cond": {"$eq": ["$$old.d", "$$new.d"]}}},
                                 0]}
    earlier_skus = {"$ifNull": ["$$same.skus", []]}
    added = {"$map": {"input": {"$literal": fresh}, "as": "new", "in": {"$let": {"vars": {"same": same_day}, "in": {
        "d": "$$new.d",
        "n": {"$add": ["$$new.n", {"$ifNull": ["$$same.n", 0]}]},
        "s": {"$add": ["$$new.s", {"$ifNull": ["$$same.s", 0]}]},
        "skus": {"$concatArrays": [earlier_skus, {"$filter": {
            "input": "$$new.skus", "as": "sku", "cond": {"$not": [{"$in": ["$$sku", earlier_skus]}]}}}]},
        **{total: {"$add": [f"$$new.{total}", running("$$kept", total, "$$new.d")]} for total in ("cn", "cs")}}}}}}
    return {"$let": {"vars": {"kept": kept}, "in": {"$concatArrays": [stored, added]}}}


def message_days(log: Mapping[str, Any]) -> dict[str, int]:
    """The days a log's message was sent, first opened, clicked and converted, by their entry keys; none for a log
    of a control recipient, and no `r` for a log that was not SENT (when the log says its status)."""
    if log.get("reason") == CONTROL_REASON:
        return {}
    events = log.get("events") or {}
    moments = {key: log.get("sent_at") if source == "sent_at" else events.get(source)
               for key, source in MESSAGE_DAYS.items()}
    if log.get("status", SENT) != SENT:
        moments["r"] = None
    return {key: day_number(moment) for key, moment in moments.items() if isinstance(moment, datetime)}


def message_activity_writes(logs: Iterable[Mapping[str, Any]]) -> list[UpdateOne]:
    """Bulk writes for the customers collection recording what these logs (customer_id, campaign_id, sent_at,
    events {opened, clicked, converted}; optionally status and reason) say happened, in `activity.messages`.

    Idempotent, order-free and safe to run at the same time as itself: one update per log, atomic on its document,
    appends the campaign's entry with the log's days if the customer has none, else keeps each day's earlier value.
    (A push conditioned on no entry followed by a second update of the entry is not: a later state of the log whose
    second update ran before an earlier state's push would lose its days.) A customer who no longer exists is
    skipped."""
    writes = []
    for log in logs:
        days = message_days(log)
        if not days:
            continue
        customer, campaign = ObjectId(log["customer_id"]), ObjectId(log["campaign_id"])
        earliest = {key: {"$min": [{"$ifNull": [f"$$entry.{key}", day]}, day]} for key, day in days.items()}
        entries = {"$let": {"vars": {"all": {"$ifNull": [f"${MESSAGES}", []]}}, "in": {"$cond": [
            # The campaigns as a $map: the local server reads `$$all.c` of an empty list as null, not [].
            {"$in": [campaign, {"$map": {"input": "$$all", "as": "entry", "in": "$$entry.c"}}]},
            {"$map": {"input": "$$all", "as": "entry", "in": {"$cond": [
                {"$eq": ["$$entry.c", campaign]}, {"$mergeObjects": ["$$entry", earliest]}, "$$entry"]}}},
            {"$concatArrays": ["$$all", [{"$literal": {"c": campaign, **days}}]]}]}}}
        writes.append(UpdateOne({"_id": customer}, [{"$set": {MESSAGES: entries}}]))
    return writes
