"""A campaign's state machine and who gets what: the one place the fan-out, the senders and the reconciler ask.

Status: SCHEDULED → QUEUED → SENDING ⇄ PAUSED → COMPLETED, and CANCELLED from any but COMPLETED. A change of status
is one compare-and-set on the campaign (audited in the same transaction); what it implies for the logs (sending the
logs a pause parked, skipping the unsent logs of a cancelled campaign) is a sweep job run by the fan-out consumer,
marked on the campaign by the same write, so that a request that dies before queuing the job leaves a mark the
reconciler finds (crm.services.reconcile).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any, Callable, Iterable
from zoneinfo import ZoneInfo

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.database import Database

from crm.access.audit import Auditor
from crm.db import CAMPAIGNS, LOGS, find_by_id, in_chunks
from crm.errors import Conflict
from crm.models.campaigns import CANCELLED, COMPLETED, PAUSED, QUEUED, SCHEDULED, SENDING, SKIPPED, is_time_zone
from crm.models.common import utcnow
from crm.services.delivery import Outcome, record_outcomes

# Where a status change may start, and where it ends.
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "pause": (frozenset({QUEUED, SENDING}), PAUSED),
    "resume": (frozenset({PAUSED}), SENDING),
    "cancel": (frozenset({SCHEDULED, QUEUED, SENDING, PAUSED}), CANCELLED),
}
# The statuses in which the fan-out records pages and the senders hand messages over.
RUNNING = (QUEUED, SENDING)
# Who a recipient is in the campaign (crm.services.lifecycle.group_of).
CONTROL, TEST, REST, EVERYONE = "control", "test", "rest", "everyone"
# The fan-out's phases: everyone at once; the test share (and the control group) first; the rest once a winner is
# picked. Between the last two it waits.
ALL, TESTING, WAITING, WINNER = "all", "test", "waiting", "rest"
SKIPPED_CANCELLED, FREQUENCY_CAP = "cancelled", "frequency_cap"
HASH_BUCKETS = 10_000


def change_status(audit: Auditor, campaign_id: str, action: str, queue_sweep: Callable[[ObjectId], None],
                  queue_fan_out: Callable[[ObjectId], None]) -> dict[str, Any]:
    """The campaign after `action`; the same when it was already made (a retried request). 409 names the status
    from which the action does not apply."""
    db = audit.db
    sources, target = TRANSITIONS[action]
    now = utcnow()
    changes: dict[str, Any] = {"status": target, "updated_at": now}
    if target in (SENDING, CANCELLED):
        changes["sweep"] = {"pending": True, "updated_at": now}
    if target == CANCELLED:
        changes["completed_at"] = now  # final: its late events are rolled up for a while (crm.consumers.roll_up)
    if target == SENDING:
        changes["fanout.updated_at"] = now  # a fan-out the pause stopped is due again; a lost job is restarted

    def cas(session: Any) -> dict[str, Any]:
        doc = db[CAMPAIGNS].find_one_and_update({"_id": ObjectId(campaign_id), "status": {"$in": list(sources)}},
                                                {"$set": changes}, return_document=ReturnDocument.AFTER,
                                                session=session)
        if doc is None:
            raise _DidNotApply  # nothing changed: the transaction ends without its audit entry
        return doc

    try:
        doc = audit.write(f"campaign.{action}", "campaign", campaign_id, cas)
    except _DidNotApply:
        current = find_by_id(db[CAMPAIGNS], campaign_id, "campaign")
        if current["status"] == target:
            return current  # made already (a retry, or another caller): the same answer
        raise Conflict(f"A {current['status']} campaign cannot be {_DONE[action]}",
                       [{"loc": ["status"], "msg": f"is {current['status']}"}]) from None
    if target in (SENDING, CANCELLED):
        queue_sweep(doc["_id"])
    if target == SENDING and not doc["fanout"]["done"]:
        queue_fan_out(doc["_id"])
    return doc


class _DidNotApply(Exception):
    """The campaign is not in a status the action starts from."""


_DONE = {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}


def is_running(campaign: dict[str, Any] | None) -> bool:
    return campaign is not None and campaign["status"] in RUNNING


def _buckets(campaign_id: ObjectId, customer_id: ObjectId) -> tuple[int, int]:
    """Two independent stable draws for a recipient of a campaign: its group, and its variant."""
    digest = hashlib.sha256(b"%s:%s" % (campaign_id.binary, customer_id.binary)).digest()
    return int.from_bytes(digest[:8], "big") % HASH_BUCKETS, int.from_bytes(digest[8:16], "big")


def group_of(campaign: dict[str, Any], customer_id: ObjectId) -> tuple[str, str | None]:
    """The recipient's group (control, test, rest, or everyone when the campaign has no test) and the variant it
    gets (None for control, and for the rest until the winner is known)."""
    group_draw, variant_draw = _buckets(campaign["_id"], customer_id)
    control = campaign.get("control_percent", 0) * HASH_BUCKETS // 100
    if group_draw < control:
        return CONTROL, None
    variants = campaign.get("variants") or []
    test = campaign.get("test")
    if test and group_draw >= control + test["percent"] * HASH_BUCKETS // 100:
        return REST, campaign.get("winner")
    chosen = variants[variant_draw % len(variants)]["name"] if variants else None
    return (TEST if test else EVERYONE), chosen


def phase_groups(phase: str) -> frozenset[str]:
    """Whom a fan-out phase writes logs for."""
    return {ALL: frozenset({CONTROL, EVERYONE}), TESTING: frozenset({CONTROL, TEST}),
            WINNER: frozenset({REST})}.get(phase, frozenset())


def first_phase(campaign: dict[str, Any]) -> str:
    return TESTING if campaign.get("test") else ALL


def after_last_page(phase: str) -> dict[str, Any]:
    """The fan-out's state once its phase's last page is recorded: done, or waiting for the test's winner."""
    if phase == TESTING:
        return {"fanout.phase": WAITING, "fanout.cursor": None, "fanout.done": False}
    return {"fanout.done": True}


def variant_message(campaign: dict[str, Any], variant: str | None) -> tuple[str, str | None]:
    """The message and subject a recipient of this variant gets."""
    for v in campaign.get("variants") or []:
        if v["name"] == variant:
            return v["message"], v.get("subject")
    return campaign["message"], campaign.get("subject")


# --- Send windows -----------------------------------------------------------------------------------------------

def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def window_opens(window: dict[str, str] | None, zone_name: str | None, now: datetime) -> datetime | None:
    """None when the window is open now in this zone (the recipient's when it is a known IANA name, else the
    window's); else when it next opens (UTC). `from` later than `to` spans midnight."""
    if not window:
        return None
    zone = ZoneInfo(zone_name if zone_name and is_time_zone(zone_name) else window["time_zone"])
    local = now.astimezone(zone)
    start, end = _clock(window["from"]), _clock(window["to"])
    clock = local.time().replace(second=0, microsecond=0)
    is_open = start <= clock < end if start < end else (clock >= start or clock < end)
    if is_open:
        return None
    opening = local.replace(hour=start.hour, minute=start.minute, second=0, microsecond=0)
    if opening <= local:
        opening += timedelta(days=1)
    # A wall-clock time that a daylight-saving jump skips is read past the jump; fold-aware arithmetic in UTC.
    return opening.replace(tzinfo=None).replace(tzinfo=zone).astimezone(now.tzinfo)


# --- What the senders and the reconciler ask ---------------------------------------------------------------------

@dataclass(frozen=True)
class NotNow:
    """Why a log's message is not handed over now: its campaign is cancelled (the log is SKIPPED), or paused, or
    outside its recipient's send window (the log waits, parked, until `until`; None: until a resume)."""
    cancelled: bool = False
    until: datetime | None = None


def campaigns_of(db: Database, campaign_ids: Iterable[ObjectId]) -> dict[ObjectId, dict[str, Any]]:
    # links: the senders track the links of its messages (crm.engagement.links).
    fields = {"status": 1, "send_window": 1, "rate_per_minute": 1, "ignore_frequency_cap": 1, "links": 1}
    return {c["_id"]: c for c in db[CAMPAIGNS].find({"_id": {"$in": list(set(campaign_ids))}}, fields)}


def not_now(db: Database, log_ids: list[ObjectId], now: datetime | None = None) -> tuple[
        dict[ObjectId, NotNow], dict[ObjectId, dict[str, Any]], dict[ObjectId, tuple[ObjectId, ObjectId]]]:
    """Of these logs, those whose message may not be handed over now and why; with the logs' campaigns (by id)
    and each log's (customer id, campaign id), for the checks that follow (rate, frequency cap)."""
    now = now or utcnow()
    logs = [log for run in in_chunks(log_ids)
            for log in db[LOGS].find({"_id": {"$in": run}}, {"campaign_id": 1, "customer_id": 1, "time_zone": 1})]
    campaigns = campaigns_of(db, (log["campaign_id"] for log in logs))
    held: dict[ObjectId, NotNow] = {}
    for log in logs:
        campaign = campaigns.get(log["campaign_id"])
        if campaign is None or campaign["status"] == CANCELLED:
            held[log["_id"]] = NotNow(cancelled=True)
        elif campaign["status"] == COMPLETED:
            continue  # a redelivered copy of a message its log has settled: the claim found nothing to send
        elif campaign["status"] not in RUNNING:
            held[log["_id"]] = NotNow()
        elif (opens := window_opens(campaign.get("send_window"), log.get("time_zone"), now)) is not None:
            held[log["_id"]] = NotNow(until=opens)
    return held, campaigns, {log["_id"]: (log["customer_id"], log["campaign_id"]) for log in logs}


def park(db: Database, log_ids: list[ObjectId], token: str, until: datetime | None) -> None:
    """Claimed logs whose message waits: released, with no message on its way. One that waits for a time is due
    then (the reconciler queues it again at once); one that waits for a resume is due never: the resume's sweep
    queues it (and the reconciler marks a sweep again for a running or cancelled campaign that still has one)."""
    changes: dict[str, Any] = {"$set": {"parked": True}, "$unset": {"claimed_until": ""}, "$inc": {"claims": -1}}
    if until is None:
        changes["$unset"]["due_at"] = ""
    else:
        changes["$set"]["due_at"] = until
    for run in in_chunks(log_ids):
        db[LOGS].update_many({"_id": {"$in": run}, "claim": token, "status": QUEUED, "vendor_message_id": None},
                             changes)


def unpark(db: Database, log_ids: list[ObjectId], due_at: datetime,
           queue: Callable[[list[dict[str, Any]]], None] | None = None) -> list[dict[str, Any]]:
    """Parked logs whose message goes now; the logs (with what their send records need) it took out of the park,
    given to `queue` first if given: one that dies between the two leaves them parked, to be queued again (a
    message queued twice is sent once: the claim)."""
    taken = []
    for run in in_chunks(log_ids):
        found = list(db[LOGS].find({"_id": {"$in": run}, "parked": True, "status": QUEUED, "vendor_message_id": None},
                                   SEND_FIELDS))
        if found and queue is not None:
            queue(found)
        if found:
            db[LOGS].update_many({"_id": {"$in": [log["_id"] for log in found]}, "parked": True},
                                 {"$unset": {"parked": ""}, "$set": {"due_at": due_at}})
        taken += found
    return taken


def after_parking(db: Database, log_ids: list[ObjectId], due_at: datetime, roll_up_every: float = 0
                  ) -> list[dict[str, Any]]:
    """Logs just parked for a pause, looked at again: if their campaign was resumed or cancelled between the check
    and the park, its sweep may have passed them. A running campaign's are taken out of the park (returned, to be
    sent); a cancelled one's SKIPPED cancelled."""
    logs = list(db[LOGS].find({"_id": {"$in": log_ids}, "parked": True}, {"campaign_id": 1}))
    statuses = {c["_id"]: c["status"] for c in db[CAMPAIGNS].find(
        {"_id": {"$in": list({log["campaign_id"] for log in logs})}}, {"status": 1})}
    cancelled = [log["_id"] for log in logs if statuses.get(log["campaign_id"], CANCELLED) == CANCELLED]
    if cancelled:
        record_outcomes(db, [Outcome(log_id, SKIPPED, reason=SKIPPED_CANCELLED) for log_id in cancelled],
                        only_if={"parked": True, "vendor_message_id": None,
                                 "claimed_until": {"$not": {"$gte": utcnow()}}}, roll_up_every=roll_up_every)
    return unpark(db, [log["_id"] for log in logs if statuses.get(log["campaign_id"]) in RUNNING], due_at)


def stranded(db: Database, campaign: dict[str, Any]) -> bool:
    """Whether a running or cancelled campaign with no sweep under way still has logs parked for a pause (a sender
    or the reconciler parked them after the resume's or cancel's sweep passed, and died before looking again)."""
    query: dict[str, Any] = {"campaign_id": campaign["_id"], "parked": True}
    if campaign["status"] != CANCELLED:
        query["due_at"] = {"$exists": False}
    return db[LOGS].find_one(query, {"_id": 1}) is not None


# What a log's send record is made of (crm.services.sending.send_record).
SEND_FIELDS = {"to": 1, "message": 1, "subject": 1, "unsubscribe_url": 1, "campaign_id": 1}
