"""The migration a CloudFormation custom resource runs once per deploy: the database's indexes, the backfills of
data written before a release (v2's here; v3's is asked for here and done by the reconciler, crm.rules.backfill).

Requests never create indexes (building one on a large collection would hold a request for minutes);
this runs at deploy, and locally when the offline runner starts.
"""
from __future__ import annotations

import json
import urllib.request
from typing import Any, Iterable, Iterator

from pymongo import UpdateOne
from pymongo.database import Database

from crm.db import CAMPAIGNS, CUSTOMERS, LOGS, MIGRATIONS, ORDERS, ensure_indexes, get_db
from crm.models.campaigns import QUEUED
from crm.models.common import utcnow
from crm.observability import logger
from crm.rules import backfill
from crm.services.delivery import flag_earlier_tallies

RESPONSE_TIMEOUT_SECONDS = 10
BACKFILL_V2 = "v2-backfill"


def handler(event: dict[str, Any], context: Any) -> None:
    """Creates and updates ensure the indexes; a delete leaves the data and its indexes alone."""
    status, reason = "SUCCESS", "indexes ensured"
    try:
        if event.get("RequestType") in ("Create", "Update"):
            db = get_db()
            ensure_indexes(db)
            backfill_v2(db)
            flag_earlier_tallies(db)
            backfill.request(db, utcnow())
        else:
            reason = "nothing to do on delete"
    except Exception as exc:  # noqa: BLE001 - CloudFormation must hear of any failure, or it waits for an hour
        logger.exception("migration failed")
        status, reason = "FAILED", f"{type(exc).__name__}: see the function's log"
    respond(event, context, status, reason)


def backfill_v2(db: Database) -> None:
    """Once: data written before v2 gets what v2 relies on. A customer's totals are split into the ingested part and
    what its orders added (so a re-ingest keeps the orders), campaigns get the time their fan-out last moved, and
    QUEUED logs a due time (so the reconciler settles them)."""
    if db[MIGRATIONS].find_one({"_id": BACKFILL_V2}):
        return
    now = utcnow()
    for chunk in _chunks(db[ORDERS].aggregate([{"$group": {"_id": "$customer_id", "spend": {"$sum": "$amount"},
                                                           "visits": {"$sum": 1}}}]), 1000):
        db[CUSTOMERS].bulk_write([UpdateOne({"_id": t["_id"], "ingested": {"$exists": False}}, [{"$set": {
            "from_orders": {"spend": t["spend"], "visits": t["visits"]},
            "ingested": {"spend": {"$max": [0, {"$subtract": ["$spend", t["spend"]]}]},
                         "visits": {"$max": [0, {"$subtract": ["$visits", t["visits"]]}]}}}}]) for t in chunk],
            ordered=False)
    db[CUSTOMERS].update_many({"ingested": {"$exists": False}}, [{"$set": {
        "ingested": {"spend": "$spend", "visits": "$visits"}, "from_orders": {"spend": 0, "visits": 0}}}])
    db[CAMPAIGNS].update_many({"fanout.updated_at": {"$exists": False}}, {"$set": {"fanout.updated_at": now}})
    db[LOGS].update_many({"status": QUEUED, "due_at": {"$exists": False}}, {"$set": {"due_at": now}})
    db[MIGRATIONS].insert_one({"_id": BACKFILL_V2, "at": now})


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def respond(event: dict[str, Any], context: Any, status: str, reason: str) -> None:
    """PUTs the outcome to the pre-signed URL CloudFormation waits on."""
    physical_id = event.get("PhysicalResourceId") or f"{event.get('LogicalResourceId', 'Migration')}-indexes"
    body = json.dumps({
        "Status": status, "Reason": reason, "PhysicalResourceId": physical_id,
        "StackId": event.get("StackId"), "RequestId": event.get("RequestId"),
        "LogicalResourceId": event.get("LogicalResourceId"), "Data": {},
    }).encode()
    # The pre-signed URL is signed without a content type, so none may be sent.
    request = urllib.request.Request(event["ResponseURL"], data=body, method="PUT",
                                     headers={"Content-Type": "", "Content-Length": str(len(body))})
    with urllib.request.urlopen(request, timeout=RESPONSE_TIMEOUT_SECONDS) as reply:  # noqa: S310 - CloudFormation's URL
        logger.info("custom resource answered", extra={"status": status, "http_status": reply.status})
