"""Campaigns: created in the request, fanned out to one log per recipient by a consumer, page by page."""
from __future__ import annotations

import itertools
import time
from typing import Any, Callable

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.cursor import Cursor
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from crm import rules
from crm.db import CAMPAIGNS, CUSTOMERS, LOGS, SEGMENTS, find_by_id
from crm.models.campaigns import QUEUED, SENDING, Campaign, Log, Stats
from crm.models.common import utcnow
from crm.pagination import newest_first_page
from crm.services.delivery import complete_if_done
from crm.services.segments import get as get_segment

QUEUE_KIND = "fanout"
PAGE_SIZE = 1000
DUPLICATE_KEY = 11000

SendRecords = Callable[[list[dict[str, Any]]], None]


def personalise(template: str, name: str) -> str:
    first_name = name.split()[0] if name.split() else name
    return template.replace("{{name}}", name).replace("{{first_name}}", first_name)


def create(db: Database, name: str, segment_id: str, message: str, created_by: str) -> dict[str, Any]:
    """The campaign document; its audience is the segment's rules evaluated at this moment."""
    segment = get_segment(db[SEGMENTS], segment_id)
    now = utcnow()
    doc = {"name": name, "segment_id": segment["_id"], "message": message, "rules": segment["rules"],
           "status": QUEUED, "created_by": created_by, "created_at": now, "audience_at": now,
           "stats": Stats().model_dump(), "fanout": {"cursor": None, "done": False}}
    doc["_id"] = db[CAMPAIGNS].insert_one(doc).inserted_id
    return doc


def get(db: Database, campaign_id: str) -> dict[str, Any]:
    return find_by_id(db[CAMPAIGNS], campaign_id, "campaign")


def list_page(db: Database, limit: int, cursor: str | None) -> tuple[list[Campaign], str | None]:
    docs, next_cursor = newest_first_page(db[CAMPAIGNS], [{}], limit, cursor)
    return [to_campaign(d) for d in docs], next_cursor


def logs_page(db: Database, campaign_id: ObjectId, status: str | None, limit: int,
              cursor: str | None) -> tuple[list[Log], str | None]:
    query: dict[str, Any] = {"campaign_id": campaign_id}
    if status:
        query["status"] = status
    docs, next_cursor = newest_first_page(db[LOGS], [query], limit, cursor)
    return [to_log(d) for d in docs], next_cursor


def fan_out(db: Database, campaign_id: ObjectId, send: SendRecords, continue_later: Callable[[], None],
            time_budget_seconds: float) -> bool:
    """Writes the logs of the next pages of the audience and queues their sends; True once all are done.

    Each page ends with a compare-and-set on the campaign's cursor that also adds the page's count,
    so a page redone after a crash or by a duplicate job adds nothing twice. Past the time budget
    the job queues its own continuation and stops.
    """
    started = time.monotonic()
    campaign = db[CAMPAIGNS].find_one({"_id": campaign_id})
    if campaign is None:
        return True
    audience = {"$and": [rules.to_filter(rules.parse(campaign["rules"]), campaign["audience_at"]),
                         {"created_at": {"$lte": campaign["audience_at"]}}]}
    while not campaign["fanout"]["done"]:
        # One query per run, read a page at a time: a query per page would have the server find its
        # place in the audience again for every page.
        with _audience_after(db, audience, campaign["fanout"]["cursor"]) as recipients:
            while not campaign["fanout"]["done"]:
                campaign, moved_by_us = _fan_out_page(db, campaign, list(itertools.islice(recipients, PAGE_SIZE)),
                                                      send)
                if not campaign["fanout"]["done"] and time.monotonic() - started > time_budget_seconds:
                    continue_later()
                    return False
                if not moved_by_us:
                    break  # another run of this job moved the cursor first: read on from where it got to
    complete_if_done(db, campaign_id)
    return True


def _audience_after(db: Database, audience: dict[str, Any], cursor: ObjectId | None) -> Cursor:
    query = audience if cursor is None else {"$and": [audience, {"_id": {"$gt": cursor}}]}
    return db[CUSTOMERS].find(query, {"name": 1, "email": 1, "phone": 1}).sort("_id", 1).batch_size(PAGE_SIZE)


def _fan_out_page(db: Database, campaign: dict[str, Any], page: list[dict[str, Any]],
                  send: SendRecords) -> tuple[dict[str, Any], bool]:
    """The campaign after this page, and whether this run was the one that recorded it."""
    cursor = campaign["fanout"]["cursor"]
    in_page: dict[str, Any] = {"campaign_id": campaign["_id"]}
    if page:
        in_page["customer_id"] = {"$lte": page[-1]["_id"], **({"$gt": cursor} if cursor else {})}
        logs = _insert_logs(db, campaign, page)
        if logs is None:  # a page redone: send only what is still unsent, read on the (campaign, customer) index
            logs = [log for log in db[LOGS].find(in_page, {"to": 1, "message": 1, "status": 1, "vendor_message_id": 1})
                    if log["status"] == QUEUED and log["vendor_message_id"] is None]
        send([{"log_id": str(log["_id"]), "to": log["to"], "message": log["message"]} for log in logs])
    written = db[LOGS].count_documents(in_page) if page else 0
    updated = db[CAMPAIGNS].find_one_and_update(
        {"_id": campaign["_id"], "fanout.cursor": cursor, "fanout.done": False},
        {"$set": {"fanout.cursor": page[-1]["_id"] if page else cursor, "fanout.done": len(page) < PAGE_SIZE,
                  "status": SENDING},
         "$inc": {"stats.audience": written, "stats.queued": written}},
        return_document=ReturnDocument.AFTER)
    if updated is None:
        return db[CAMPAIGNS].find_one({"_id": campaign["_id"]}), False
    return updated, True


def _insert_logs(db: Database, campaign: dict[str, Any], customers: list[dict[str, Any]]) -> list[dict] | None:
    """The logs written, or None when some already existed (and were left as they are)."""
    now = utcnow()
    logs = [{"_id": ObjectId(), "campaign_id": campaign["_id"], "customer_id": c["_id"], "status": QUEUED,
             "message": personalise(campaign["message"], c["name"]),
             "to": {"name": c["name"], "email": c["email"], "phone": c.get("phone")},
             "vendor_message_id": None, "sent_at": None, "created_at": now, "updated_at": now} for c in customers]
    try:
        db[LOGS].insert_many(logs, ordered=False)
    except BulkWriteError as exc:
        if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
            raise
        return None
    return logs


def to_campaign(doc: dict[str, Any]) -> Campaign:
    return Campaign(id=str(doc["_id"]), name=doc["name"], segment_id=str(doc["segment_id"]), message=doc["message"],
                    status=doc["status"], created_at=doc["created_at"], stats=Stats(**doc["stats"]))


def to_log(doc: dict[str, Any]) -> Log:
    return Log(id=str(doc["_id"]), customer_id=str(doc["customer_id"]), status=doc["status"], message=doc["message"],
               vendor_message_id=doc.get("vendor_message_id"), sent_at=doc.get("sent_at"),
               updated_at=doc["updated_at"])
