"""Attribution: each order counts for the most recent campaign message (a SENT log) its customer was sent in the
ATTRIBUTION_DAYS before the order's date, and, when its customer was in a campaign's control group written in
that window, for that control group too.

It runs in the order consumer's transaction that records the orders and applies them to their customers
(crm.services.orders), so an order is attributed exactly once however often it is delivered: a redelivery finds
the order recorded and applies nothing. The log takes what the roll-up counts, as every outcome does
(crm.services.delivery): the first attributed order of a recipient pushes `converted` (`control.converted` for a
control log) onto its tally and sets `events.converted`; every one adds its amount to the log's `revenue` and to
`tally_revenue`, which the roll-up moves to the campaign's `stats.revenue` (or `control.revenue`). No write to the
campaign here: a busy campaign's orders would all meet on its document.

Whether a message counts depends on its outcome: an order whose most recent message in the window was handed over
but has none yet (a receipt or SES event still on its way, or lost and settled by the reconciler later) is recorded
with `attribution_pending` and attributed by the reconciler once that message is SENT or FAILED
(attribute_deferred), in one transaction with its logs, conditioned on the flag: still exactly once."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable

from bson import ObjectId
from pymongo import UpdateOne
from pymongo.client_session import ClientSession
from pymongo.database import Database

from crm.db import LOGS, ORDERS, in_chunks
from crm.models.campaigns import QUEUED, SENT, SKIPPED_CONTROL
from crm.models.common import utcnow
from crm.services.delivery import PENDING

CONVERTED, CONTROL_CONVERTED, UNSUBSCRIBED = "converted", "control.converted", "unsubscribed"
# An order whose attribution waits for its message's outcome (on a partial index: only those).
DEFERRED = {"attribution_pending": True}
# Deferred orders one reconciler run attributes.
DEFERRED_PAGE = 500


@dataclass(frozen=True)
class Purchase:
    order_id: str
    customer_id: ObjectId
    amount: float
    date: datetime


@dataclass(frozen=True)
class Attribution:
    """Where an order counts: the log (and campaign) of the message it is attributed to, the control log of the
    control group it counts for; either may be None."""
    log_id: ObjectId | None = None
    campaign_id: ObjectId | None = None
    control_log_id: ObjectId | None = None
    control_campaign_id: ObjectId | None = None

    def to_doc(self) -> dict[str, Any] | None:
        if self.log_id is None and self.control_log_id is None:
            return None
        return {"log_id": self.log_id, "campaign_id": self.campaign_id, "control_log_id": self.control_log_id,
                "control_campaign_id": self.control_campaign_id}


def attribute(db: Database, purchases: list[Purchase], days: int, session: ClientSession
              ) -> tuple[dict[str, Attribution], set[str]]:
    """Each purchase's attribution (by order_id; only those that count somewhere), with the logs it counts on
    updated in the caller's transaction, and the order_ids deferred: those whose most recent message in the window
    was handed over but has no outcome yet (its receipt or SES's event still to come), so that whether it counts
    can be decided only once it has one (attribute_deferred). Two indexed reads a hundred customers: their messages
    handed over in the window of their orders, and their control logs written in it."""
    if not purchases:
        return {}, set()
    window = timedelta(days=days)
    since = min(p.date for p in purchases) - window
    until = max(p.date for p in purchases)
    customers = sorted({p.customer_id for p in purchases})
    sent = _by_customer(db, customers, {"sent_at": {"$gte": since, "$lte": until}, "status": {"$in": [SENT, QUEUED]}},
                        "sent_at", session)
    control = _by_customer(db, customers, {"reason": SKIPPED_CONTROL, "created_at": {"$gte": since, "$lte": until}},
                           "created_at", session)
    found: dict[str, Attribution] = {}
    deferred: set[str] = set()
    on_logs: dict[ObjectId, list[Purchase]] = defaultdict(list)
    for p in purchases:
        message = _latest(sent.get(p.customer_id, ()), "sent_at", p.date - window, p.date)
        if message is not None and message["status"] != SENT:
            deferred.add(p.order_id)
            continue
        held_back = _latest(control.get(p.customer_id, ()), "created_at", p.date - window, p.date)
        attribution = Attribution(message and message["_id"], message and message["campaign_id"],
                                  held_back and held_back["_id"], held_back and held_back["campaign_id"])
        if attribution.to_doc():
            found[p.order_id] = attribution
        for log in (message, held_back):
            if log is not None:
                on_logs[log["_id"]].append(p)
    controls = {log["_id"] for logs in control.values() for log in logs}
    if on_logs:
        db[LOGS].bulk_write([_conversion(log_id, bought, log_id in controls) for log_id, bought in on_logs.items()],
                            ordered=False, session=session)
    return found, deferred


def attribute_deferred(db: Database, days: int, limit: int = DEFERRED_PAGE) -> list[ObjectId]:
    """Attributes the deferred orders whose message now has its outcome (found on a partial index holding only
    deferred orders), each in one transaction with the logs it counts on and conditioned on the order still being
    deferred, so two runs at once attribute it once; those still waiting stay deferred. The logs counted on, for a
    roll-up."""
    pending = list(db[ORDERS].find(DEFERRED, {"order_id": 1, "customer_id": 1, "amount": 1, "date": 1})
                   .sort("_id", 1).limit(limit))
    counted: list[ObjectId] = []
    for run in in_chunks(pending):
        purchases = [Purchase(o["order_id"], o["customer_id"], o["amount"], o["date"]) for o in run]

        def settle(session: ClientSession) -> list[ObjectId]:
            found, deferred = attribute(db, purchases, days, session)
            for o in run:
                if o["order_id"] in deferred:
                    continue
                attributed = found.get(o["order_id"])
                moved = db[ORDERS].update_one(
                    {"_id": o["_id"], **DEFERRED},
                    {"$unset": {"attribution_pending": ""},
                     **({"$set": {"attribution": attributed.to_doc()}} if attributed else {})}, session=session)
                if not moved.modified_count:
                    raise _AttributedMeanwhile  # another run did it: this transaction must not count it again
            return [log_id for a in found.values() for log_id in (a.log_id, a.control_log_id) if log_id]

        try:
            with db.client.start_session() as session:
                counted += session.with_transaction(settle)
        except _AttributedMeanwhile:
            continue
    return counted


class _AttributedMeanwhile(Exception):
    """Another run attributed one of these orders first; this run's transaction is abandoned."""


def _by_customer(db: Database, customers: list[ObjectId], query: dict, at: str,
                 session: ClientSession) -> dict[ObjectId, list[dict]]:
    logs: dict[ObjectId, list[dict]] = defaultdict(list)
    for run in in_chunks(customers):
        for log in db[LOGS].find({"customer_id": {"$in": run}, **query},
                                 {"customer_id": 1, "campaign_id": 1, "status": 1, at: 1}, session=session):
            logs[log["customer_id"]].append(log)
    return logs


def _latest(logs: Iterable[dict], at: str, since: datetime, until: datetime) -> dict | None:
    """The most recent of these logs in [since, until]; of two at the same moment, the later written."""
    inside = [log for log in logs if since <= log[at] <= until]
    return max(inside, key=lambda log: (log[at], log["_id"]), default=None)


def _conversion(log_id: ObjectId, purchases: list[Purchase], control: bool) -> UpdateOne:
    """The log's first conversion (once: `events.converted` is set only if absent, the tally pushed only then) and
    its revenue, for the roll-up to count."""
    amount = sum(p.amount for p in purchases)
    first = min(p.date for p in purchases)
    unconverted = {"$eq": [{"$ifNull": ["$events.converted", None]}, None]}
    return UpdateOne({"_id": log_id}, [{"$set": {
        # The earliest attributed order, whatever order they are applied in.
        "events.converted": {"$min": [{"$ifNull": ["$events.converted", {"$literal": first}]}, {"$literal": first}]},
        "revenue": {"$add": [{"$ifNull": ["$revenue", 0]}, amount]},
        "tally_revenue": {"$add": [{"$ifNull": ["$tally_revenue", 0]}, amount]},
        "tally": {"$concatArrays": [{"$ifNull": ["$tally", []]},
                                    {"$cond": [unconverted, [CONTROL_CONVERTED if control else CONVERTED], []]}]},
        **PENDING}}])


def attribute_unsubscribe(db: Database, customer_id: ObjectId, session: ClientSession) -> None:
    """An unsubscribe counts for the most recent campaign message its person was sent (in the unsubscribe's own
    transaction, which happens once per person: a repeated click records nothing); the roll-up counts it in the
    campaign's `stats.unsubscribed`."""
    log = db[LOGS].find_one({"customer_id": customer_id, "sent_at": {"$ne": None}, "status": SENT}, {"_id": 1},
                            sort=[("sent_at", -1)], session=session)
    if log is not None:
        db[LOGS].update_one({"_id": log["_id"], "events.unsubscribed": {"$exists": False}},
                            {"$set": {"events.unsubscribed": utcnow(), **PENDING}, "$push": {"tally": UNSUBSCRIBED}},
                            session=session)
