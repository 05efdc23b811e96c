"""Campaigns: created in the request, fanned out to one log per recipient by a consumer, page by page."""
from __future__ import annotations

import itertools
import re
import time
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.client_session import ClientSession
from pymongo.cursor import Cursor
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from crm import rules
from crm.access.audit import Auditor
from crm.channels import is_unconfirmed
from crm.db import CAMPAIGNS, CUSTOMERS, LOGS, SEGMENTS, find_by_id, only_duplicates
from crm.models.campaigns import COMPLETED, PLACEHOLDERS, QUEUED, SENDING, Campaign, Log, Stats
from crm.models.common import to_iso, utcnow
from crm.pagination import newest_first_page
from crm.services.delivery import complete_in
from crm.services.segments import get as get_segment
from crm.services.sending import send_record

QUEUE_KIND = "fanout"
PAGE_SIZE = 1000

SendRecords = Callable[[list[dict[str, Any]]], None]
# A customer's unsubscribe link.
UnsubscribeLink = Callable[[ObjectId], str]


def personalise(template: str, name: str, attributes: Mapping[str, Any] | None = None,
                unsubscribe_url: str = "") -> str:
    """One pass over the template, so a name or attribute that itself reads "{{first_name}}" is left as it is."""
    first_name = name.split()[0] if name.split() else name
    values = {"name": name, "first_name": first_name, "unsubscribe_url": unsubscribe_url}
    attributes = attributes or {}

    def fill(match: re.Match[str]) -> str:
        key = match["key"]
        return attribute_text(attributes.get(key)) if key else values[match.group(1)]

    return PLACEHOLDERS.sub(fill, template)


def attribute_text(value: Any) -> str:
    """An attribute as a message shows it: a string as it is; a number as written, whole ones without ".0"; a
    boolean "true" or "false", as in JSON; a time in ISO 8601, UTC. A missing attribute is empty; no value
    is longer than LONGEST_ATTRIBUTE_TEXT, which the creation check counts on."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, datetime):
        return to_iso(value)
    return ""  # missing; ingest stores no other type


def message_attribute_keys(template: str) -> set[str]:
    """The attribute keys a message names."""
    return {m["key"] for m in PLACEHOLDERS.finditer(template) if m["key"]}


def create(audit: Auditor, campaign_id: ObjectId, name: str, segment_id: str, message: str,
           queue_fan_out: Callable[[ObjectId], None], consent_mode: str = rules.OPT_OUT,
           subject: str | None = None) -> dict[str, Any]:
    """The campaign with this id, its audience the segment's rules at this moment; the same one when a retry
    of the request that chose the id finds it already made.

    The fan-out job is queued before the campaign is stored: a request that dies between the two leaves a job
    that finds no campaign (and ends), never a stored campaign that nothing will send. The campaign and its audit
    entry are stored together.
    """
    db = audit.db
    segment = get_segment(db[SEGMENTS], segment_id)
    now = utcnow()
    doc = {"_id": campaign_id, "name": name, "segment_id": segment["_id"], "message": message, "subject": subject,
           "rules": segment["rules"], "consent_mode": consent_mode, "status": QUEUED,
           "created_by": audit.actor.email, "created_at": now,
           "audience_at": now, "stats": Stats().model_dump(), "fanout": {"cursor": None, "done": False,
                                                                       "updated_at": now}}
    queue_fan_out(campaign_id)
    try:
        audit.write("campaign.create", "campaign", str(campaign_id),
                    lambda session: db[CAMPAIGNS].insert_one(doc, session=session))
    except DuplicateKeyError:
        return db[CAMPAIGNS].find_one({"_id": campaign_id})
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
            time_budget_seconds: float, send_timeout: timedelta = timedelta(hours=1),
            unsubscribe_link: UnsubscribeLink | None = None) -> bool:
    """Writes the logs of the next pages of the audience and queues their sends; True once all are done.

    Each page is one transaction: its new logs, the counters they add and the move of the campaign's
    cursor commit together, and only if the cursor is still where this run read it. A page redone after
    a crash or by a duplicate job writes and counts nothing twice, and no log exists that the counters miss.
    Sends are queued after the commit; a run that dies before queuing them leaves logs the reconciler sends.
    Past the time budget the job queues its own continuation and stops.
    """
    started = time.monotonic()
    campaign = db[CAMPAIGNS].find_one({"_id": campaign_id})
    if campaign is None:
        return True  # the request creating it died before storing it: there is nothing to send
    audience = {"$and": [rules.to_filter(rules.parse(campaign["rules"]), campaign["audience_at"],
                                         campaign.get("consent_mode", rules.OPT_OUT)),
                         {"created_at": {"$lte": campaign["audience_at"]}}]}
    while not campaign["fanout"]["done"]:
        # One query per run, read a page at a time: a query per page would have the server find its
        # place in the audience again for every page.
        with _audience_after(db, audience, campaign["fanout"]["cursor"],
                             message_attribute_keys(campaign["message"])) as recipients:
            while not campaign["fanout"]["done"]:
                page = list(itertools.islice(recipients, PAGE_SIZE))
                campaign, logs = _record_page(db, campaign, page, utcnow() + send_timeout, unsubscribe_link)
                if logs is None:
                    break  # another run of this job moved the cursor first: read on from where it got to
                send([send_record(log) for log in logs])
                if not campaign["fanout"]["done"] and time.monotonic() - started > time_budget_seconds:
                    continue_later()
                    return False
    complete_in(db, campaign_id)
    return True


def _audience_after(db: Database, audience: dict[str, Any], cursor: ObjectId | None,
                    attributes: set[str]) -> Cursor:
    """The recipients after the cursor, with what their logs need: only the attributes the message names."""
    query = audience if cursor is None else {"$and": [audience, {"_id": {"$gt": cursor}}]}
    fields = {"name": 1, "email": 1, "phone": 1, **{f"attributes.{key}": 1 for key in sorted(attributes)}}
    return db[CUSTOMERS].find(query, fields).sort("_id", 1).batch_size(PAGE_SIZE)


class _Overtaken(Exception):
    """Another run recorded this page (or a later one) first."""


def _record_page(db: Database, campaign: dict[str, Any], page: list[dict[str, Any]], send_by: datetime,
                 unsubscribe_link: UnsubscribeLink | None) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
    """The campaign after this page and the logs this run wrote; None for the logs when another run was first.
    A log not sent by send_by has lost its send message; the reconciler queues it again."""
    cursor = campaign["fanout"]["cursor"]
    done = len(page) < PAGE_SIZE
    # Made before the transaction: a transaction that starts over does not personalise them again.
    candidates = _new_logs(campaign, page, send_by, unsubscribe_link)

    def record(session: ClientSession) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        # The campaign is the first thing the transaction touches: it then holds the document every send, receipt
        # and event also counts on, and their short transactions retry until it commits. Touched after anything
        # else (the transaction's view of the data starts at its first statement), it met their commits and
        # started over, and on a busy campaign timed out page after page.
        moved = db[CAMPAIGNS].update_one(
            {"_id": campaign["_id"], "fanout.cursor": cursor, "fanout.done": False},
            {"$set": {"fanout.cursor": page[-1]["_id"] if page else cursor, "fanout.done": done,
                      "fanout.updated_at": utcnow(), "status": SENDING}}, session=session)
        if not moved.modified_count:
            raise _Overtaken
        logged = {d["customer_id"] for d in db[LOGS].find(
            {"campaign_id": campaign["_id"], "customer_id": {"$in": [c["_id"] for c in page]}},
            {"customer_id": 1}, session=session)} if page else set()
        logs = [log for log in candidates if log["customer_id"] not in logged]
        if logs:
            db[LOGS].insert_many(logs, ordered=False, session=session)
        updated = db[CAMPAIGNS].find_one_and_update(
            {"_id": campaign["_id"]}, {"$inc": {"stats.audience": len(logs), "stats.queued": len(logs)}},
            return_document=ReturnDocument.AFTER, session=session)
        if done and complete_in(db, campaign["_id"], session):
            updated["status"] = COMPLETED
        return updated, logs

    try:
        with db.client.start_session() as session:
            return session.with_transaction(record)
    except (_Overtaken, DuplicateKeyError, BulkWriteError) as exc:
        if isinstance(exc, BulkWriteError) and not only_duplicates(exc):
            raise
        # A duplicate run committed logs of this page after this transaction began: it moved the cursor too.
        return db[CAMPAIGNS].find_one({"_id": campaign["_id"]}), None


def _new_logs(campaign: dict[str, Any], customers: list[dict[str, Any]], send_by: datetime,
              unsubscribe_link: UnsubscribeLink | None) -> list[dict[str, Any]]:
    now = utcnow()
    logs = []
    subject = campaign.get("subject")
    # An e-mail (one with a subject) always carries its link in List-Unsubscribe; another message only if it asks.
    linked = unsubscribe_link is not None and (
        subject is not None or "{{unsubscribe_url}}" in campaign["message"])
    for c in customers:
        link = unsubscribe_link(c["_id"]) if linked else ""
        logs.append({
            "_id": ObjectId(), "campaign_id": campaign["_id"], "customer_id": c["_id"], "status": QUEUED,
            "message": personalise(campaign["message"], c["name"], c.get("attributes"), link),
            "subject": personalise(subject, c["name"], c.get("attributes"), link) if subject else None,
            "unsubscribe_url": link or None,
            "to": {"name": c["name"], "email": c["email"], "phone": c.get("phone")},
            "vendor_message_id": None, "sent_at": None, "reason": None, "send_attempts": 0,
            "due_at": send_by, "created_at": now, "updated_at": now})
    return logs


def to_campaign(doc: dict[str, Any]) -> Campaign:
    return Campaign(id=str(doc["_id"]), name=doc["name"], segment_id=str(doc["segment_id"]), message=doc["message"],
                    subject=doc.get("subject"), status=doc["status"], created_at=doc["created_at"],
                    stats=Stats(**doc["stats"]))


def to_log(doc: dict[str, Any]) -> Log:
    vendor_message_id = doc.get("vendor_message_id")
    if is_unconfirmed(vendor_message_id):
        vendor_message_id = None  # sent (or being handed over) with no id from the vendor
    return Log(id=str(doc["_id"]), customer_id=str(doc["customer_id"]), status=doc["status"], message=doc["message"],
               vendor_message_id=vendor_message_id, sent_at=doc.get("sent_at"),
               updated_at=doc["updated_at"], reason=doc.get("reason") or doc.get("failure_reason"),
               opened_at=doc.get("events", {}).get("opened"), clicked_at=doc.get("events", {}).get("clicked"))
