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
from crm.consent import gate
from crm.db import CAMPAIGNS, CUSTOMERS, LOGS, SEGMENTS, find_by_id, only_duplicates
from crm.engagement.links import campaign_links
from crm.models.campaigns import (
    COMPLETED,
    PLACEHOLDERS,
    QUEUED,
    SCHEDULED,
    SENDING,
    SKIPPED,
    SKIPPED_CONTROL,
    Campaign,
    CampaignIn,
    Log,
    Stats,
)
from crm.models.common import to_iso, utcnow
from crm.pagination import newest_first_page
from crm.services import lifecycle
from crm.services.delivery import complete_in
from crm.services.segments import get as get_segment
from crm.services.sending import send_record

QUEUE_KIND = "fanout"
PAGE_SIZE = 1000

# Queues send records of a campaign (packed to suit its rate).
SendRecords = Callable[[list[dict[str, Any]], dict[str, Any]], None]
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


def create(audit: Auditor, campaign_id: ObjectId, body: CampaignIn, queue_fan_out: Callable[[ObjectId], None],
           consent_mode: str = rules.OPT_OUT) -> dict[str, Any]:
    """The campaign with this id, its audience the segment's rules when it starts (now, or at its send_at); the
    same one when a retry of the request that chose the id finds it already made.

    The fan-out job is queued before the campaign is stored: a request that dies between the two leaves a job
    that finds no campaign (and ends), never a stored campaign that nothing will send. A scheduled campaign has no
    job yet: the reconciler starts it at its time. The campaign and its audit entry are stored together.
    """
    db = audit.db
    segment = get_segment(db[SEGMENTS], body.segment_id)
    now = utcnow()
    scheduled = body.send_at is not None and body.send_at > now
    doc = {"_id": campaign_id, "name": body.name, "segment_id": segment["_id"], "message": body.message,
           "subject": body.subject, "rules": segment["rules"], "consent_mode": consent_mode,
           "status": SCHEDULED if scheduled else QUEUED, "created_by": audit.actor.email, "created_at": now,
           "send_at": body.send_at if scheduled else None, "audience_at": now,
           "rate_per_minute": body.rate_per_minute,
           "send_window": body.send_window.model_dump(by_alias=True) if body.send_window else None,
           "variants": [v.model_dump() for v in body.variants] if body.variants else None,
           "test": body.test.model_dump() if body.test else None, "winner": None,
           "control_percent": body.control_percent, "ignore_frequency_cap": body.ignore_frequency_cap,
           # Its links: a link's index here names it in its tracked URLs and its counters (link_stats.<index>).
           "links": campaign_links(m["message"] for m in body.messages()),
           "stats": Stats().model_dump()}
    doc["fanout"] = {"cursor": None, "done": False, "updated_at": now, "phase": lifecycle.first_phase(doc)}
    if not scheduled:
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
    """Writes the logs of the next pages of the audience and queues their sends; True once this job is over (all
    done, or the campaign is not running: paused, cancelled, scheduled, waiting for its test's winner).

    Each page is one transaction: its new logs, the counters they add and the move of the campaign's
    cursor commit together, and only if the cursor is still where this run read it and the campaign still runs.
    A page redone after a crash or by a duplicate job writes and counts nothing twice, and no log exists that the
    counters miss. Sends are queued after the commit; a run that dies before queuing them leaves logs the
    reconciler sends. Past the time budget the job queues its own continuation and stops.
    """
    started = time.monotonic()
    campaign = db[CAMPAIGNS].find_one({"_id": campaign_id})
    if campaign is None:
        return True  # the request creating it died before storing it: there is nothing to send
    audience = {"$and": [rules.to_filter(rules.parse(campaign["rules"]), campaign["audience_at"],
                                         campaign.get("consent_mode", rules.OPT_OUT)),
                         {"created_at": {"$lte": campaign["audience_at"]}}]}
    while _fanning(campaign):
        # One query per run, read a page at a time: a query per page would have the server find its
        # place in the audience again for every page.
        with _audience_after(db, audience, campaign["fanout"]["cursor"], _attributes_needed(campaign),
                             consent=bool(campaign.get("control_percent"))) as recipients:
            while _fanning(campaign):
                page = list(itertools.islice(recipients, PAGE_SIZE))
                campaign, logs = _record_page(db, campaign, page, utcnow() + send_timeout, unsubscribe_link)
                if logs is None:
                    break  # another run moved the cursor first, or the campaign stopped: read on from where it is
                send([send_record(log) for log in logs], campaign)
                if _fanning(campaign) and time.monotonic() - started > time_budget_seconds:
                    continue_later()
                    return False
    if campaign["fanout"]["done"]:
        complete_in(db, campaign_id)
    return True


def _fanning(campaign: dict[str, Any]) -> bool:
    return (lifecycle.is_running(campaign) and not campaign["fanout"]["done"]
            and _phase(campaign) != lifecycle.WAITING)


def _phase(campaign: dict[str, Any]) -> str:
    return campaign["fanout"].get("phase", lifecycle.ALL)


def _attributes_needed(campaign: dict[str, Any]) -> set[str]:
    """The attributes its messages name, and the recipient's time zone when it has a send window."""
    keys = {key for v in _messages(campaign) for text in v if text for key in message_attribute_keys(text)}
    return keys | ({"time_zone"} if campaign.get("send_window") else set())


def _messages(campaign: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(v["message"], v.get("subject")) for v in campaign.get("variants") or []] or [
        (campaign["message"], campaign.get("subject"))]


def _audience_after(db: Database, audience: dict[str, Any], cursor: ObjectId | None,
                    attributes: set[str], consent: bool = False) -> Cursor:
    """The recipients after the cursor, with what their logs need: only the attributes the message names, and their
    consent when a control group is held back (only people the campaign could reach are)."""
    query = audience if cursor is None else {"$and": [audience, {"_id": {"$gt": cursor}}]}
    fields = {"name": 1, "email": 1, "phone": 1, **({"email_consent": 1} if consent else {}),
              **{f"attributes.{key}": 1 for key in sorted(attributes)}}
    return db[CUSTOMERS].find(query, fields).sort("_id", 1).batch_size(PAGE_SIZE)


class _Overtaken(Exception):
    """Another run recorded this page (or a later one) first, or the campaign stopped running."""


def _record_page(db: Database, campaign: dict[str, Any], page: list[dict[str, Any]], send_by: datetime,
                 unsubscribe_link: UnsubscribeLink | None) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
    """The campaign after this page and the logs this run wrote to be sent; None for the logs when another run was
    first or the campaign stopped running. A log not sent by send_by has lost its send message; the reconciler
    queues it again."""
    cursor, phase = campaign["fanout"]["cursor"], _phase(campaign)
    last = len(page) < PAGE_SIZE
    # Made before the transaction: a transaction that starts over does not personalise them again.
    candidates = _only_the_reachable_held_back(db, campaign, page,
                                                _new_logs(campaign, page, phase, send_by, unsubscribe_link))

    def record(session: ClientSession) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        # The campaign is the first thing the transaction touches: it then holds the document every send, receipt
        # and event also counts on, and their short transactions retry until it commits. Touched after anything
        # else (the transaction's view of the data starts at its first statement), it met their commits and
        # started over, and on a busy campaign timed out page after page.
        moved = db[CAMPAIGNS].update_one(
            {"_id": campaign["_id"], "fanout.cursor": cursor, "fanout.done": False,
             "fanout.phase": {"$in": [phase, None]} if phase == lifecycle.ALL else phase,
             "status": {"$in": list(lifecycle.RUNNING)}},
            {"$set": {"fanout.cursor": page[-1]["_id"] if page else cursor, "fanout.updated_at": utcnow(),
                      "status": SENDING, **(lifecycle.after_last_page(phase) if last else {})}}, session=session)
        if not moved.modified_count:
            raise _Overtaken
        logged = {d["customer_id"] for d in db[LOGS].find(
            {"campaign_id": campaign["_id"], "customer_id": {"$in": [c["_id"] for c in page]}},
            {"customer_id": 1}, session=session)} if page else set()
        logs = [log for log in candidates if log["customer_id"] not in logged]
        if logs:
            db[LOGS].insert_many(logs, ordered=False, session=session)
        to_send = [log for log in logs if log["status"] == QUEUED]
        control = sum(log["reason"] == SKIPPED_CONTROL for log in logs)
        updated = db[CAMPAIGNS].find_one_and_update(
            {"_id": campaign["_id"]}, {"$inc": {"stats.audience": len(logs), "stats.queued": len(to_send),
                                                "stats.skipped": len(logs) - len(to_send),
                                                **({"control.recipients": control} if control else {})}},
            return_document=ReturnDocument.AFTER, session=session)
        if updated["fanout"]["done"] and complete_in(db, campaign["_id"], session):
            updated["status"] = COMPLETED
        return updated, to_send

    try:
        with db.client.start_session() as session:
            return session.with_transaction(record)
    except (_Overtaken, DuplicateKeyError, BulkWriteError) as exc:
        if isinstance(exc, BulkWriteError) and not only_duplicates(exc):
            raise
        # A duplicate run committed logs of this page after this transaction began: it moved the cursor too.
        return db[CAMPAIGNS].find_one({"_id": campaign["_id"]}), None


def _new_logs(campaign: dict[str, Any], customers: list[dict[str, Any]], phase: str, send_by: datetime,
              unsubscribe_link: UnsubscribeLink | None) -> list[dict[str, Any]]:
    """The logs of the customers this phase writes: a message of their variant, or a control group's SKIPPED log."""
    now = utcnow()
    logs = []
    writes = lifecycle.phase_groups(phase)
    windowed = bool(campaign.get("send_window"))
    for c in customers:
        group, variant = lifecycle.group_of(campaign, c["_id"])
        if group not in writes:
            continue
        log = {"_id": ObjectId(), "campaign_id": campaign["_id"], "customer_id": c["_id"], "status": QUEUED,
               "to": {"name": c["name"], "email": c["email"], "phone": c.get("phone")}, "variant": variant,
               "vendor_message_id": None, "sent_at": None, "reason": None, "send_attempts": 0,
               "due_at": send_by, "created_at": now, "updated_at": now}
        if group == lifecycle.CONTROL:
            logs.append({**log, "status": SKIPPED, "reason": SKIPPED_CONTROL, "message": "",
                         "subject": None, "unsubscribe_url": None, "due_at": None})
            continue
        message, subject = lifecycle.variant_message(campaign, variant)
        # An e-mail (one with a subject) always carries its link in List-Unsubscribe; another message only if it
        # asks.
        linked = unsubscribe_link is not None and (subject is not None or "{{unsubscribe_url}}" in message)
        link = unsubscribe_link(c["_id"]) if linked else ""
        attributes = c.get("attributes")
        log.update(message=personalise(message, c["name"], attributes, link),
                   subject=personalise(subject, c["name"], attributes, link) if subject else None,
                   unsubscribe_url=link or None)
        if windowed and isinstance((attributes or {}).get("time_zone"), str):
            log["time_zone"] = attributes["time_zone"]
        logs.append(log)
    return logs


def _only_the_reachable_held_back(db: Database, campaign: dict[str, Any], page: list[dict[str, Any]],
                                  logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A control recipient the campaign could not have messaged (suppressed, not subscribed) is skipped for that
    reason instead of held back, as the treatment's are at send: the control's conversion rate is then that of
    people the campaign would have reached, and its lift compares like with like. One read of suppressions for the
    page's control group."""
    held = {log["customer_id"] for log in logs if log["reason"] == SKIPPED_CONTROL}
    if not held:
        return logs
    unreachable = gate.reasons_not_to_message(db, [c for c in page if c["_id"] in held],
                                              campaign.get("consent_mode", rules.OPT_OUT))
    return [{**log, "reason": unreachable[log["customer_id"]]}
            if log["reason"] == SKIPPED_CONTROL and log["customer_id"] in unreachable else log for log in logs]


def to_campaign(doc: dict[str, Any]) -> Campaign:
    return Campaign(id=str(doc["_id"]), name=doc["name"], segment_id=str(doc["segment_id"]), message=doc["message"],
                    subject=doc.get("subject"), status=doc["status"], created_at=doc["created_at"],
                    stats=Stats(**doc["stats"]), send_at=doc.get("send_at"),
                    rate_per_minute=doc.get("rate_per_minute"), send_window=doc.get("send_window"),
                    variants=doc.get("variants"), test=doc.get("test"), winner=doc.get("winner"),
                    control_percent=doc.get("control_percent", 0),
                    ignore_frequency_cap=doc.get("ignore_frequency_cap", False))


def to_log(doc: dict[str, Any]) -> Log:
    vendor_message_id = doc.get("vendor_message_id")
    if is_unconfirmed(vendor_message_id):
        vendor_message_id = None  # sent (or being handed over) with no id from the vendor
    return Log(id=str(doc["_id"]), customer_id=str(doc["customer_id"]), status=doc["status"], message=doc["message"],
               vendor_message_id=vendor_message_id, sent_at=doc.get("sent_at"),
               updated_at=doc["updated_at"], reason=doc.get("reason") or doc.get("failure_reason"),
               opened_at=doc.get("events", {}).get("opened"), clicked_at=doc.get("events", {}).get("clicked"),
               variant=doc.get("variant"))
