"""The reconciler: settles what lost messages left behind, so every campaign completes.

Each log still QUEUED carries `due_at`, the time by which something should have happened to it: its send (the
send message was lost or dead-lettered, or its sender died and the claim lapsed) or its receipt (the vendor's
report was lost). Past it, the reconciler asks the vendor what became of a sent message (`no_receipt` when the
vendor has no outcome). An unsent log is queued again only while no send message is on its way (the send queue
holds none, visible, in flight or delayed): a message still waiting in the queue is not duplicated however long
the campaign takes; one that dead-lettered, or a fan-out that died before queuing its sends, is found once the
queue is idle. It FAILS (`send_failed`) once the channel failed it max_send_attempts times, or senders claimed it
MAX_CLAIMS times and died before saying what became of it. It also queues again a fan-out that stopped recording
pages, rolls up the tallies a consumer that died left, completes campaigns whose last outcome was recorded without
completing them, and blanks the logs of erased customers that their erasure left. What time is left goes to the v3
backfill of the customers' activity while it is not done (crm.rules.backfill).
"""
from __future__ import annotations

import secrets
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from bson import ObjectId
from pymongo.database import Database

from crm.consent import erasure
from crm.consent.suppressions import ERASED
from crm.db import CAMPAIGNS, LOGS
from crm.engagement import attribution
from crm.models.campaigns import FAILED, QUEUED, SENDING, SKIPPED
from crm.models.common import utcnow
from crm.rules import backfill
from crm.services import lifecycle, schedule
from crm.services.delivery import Outcome, complete_in, flag_earlier_tallies, record_outcomes, roll_up_due
from crm.services.sending import send_record

PAGE = 500
# Vendor answers recorded together: a run cut off by its deadline keeps what it learnt.
ASK_CHUNK = 50
FINAL = ("SENT", "FAILED")
# A vendor that cannot be reached is asked again later, this many times in all before the log is given up.
MAX_VENDOR_ASKS = 3
# How long a run holds the due logs it took; one that dies lets them be due again after this (and a log left for a
# send message still on its way is looked at again after this).
LEASE = timedelta(minutes=5)
# Senders that claimed a log this often and never said what became of it (each died, or its call was cut off).
MAX_CLAIMS = 10


@dataclass(frozen=True)
class Limits:
    send_timeout: timedelta
    receipt_timeout: timedelta
    max_send_attempts: int
    fanout_stall: timedelta
    # The reconciler's outcomes roll their campaigns up as a consumer's do, taking turns (0: at once).
    roll_up_every: float = 0
    # Deferred orders count for a message sent this many days before them (crm.engagement.attribution).
    attribution_days: int = 5


@dataclass
class Settled:
    """What one run did, for its log line and for tests."""
    requeued: int = 0
    send_failed: int = 0
    asked_vendor: int = 0
    vendor_unreachable: int = 0
    no_receipt: int = 0
    fanouts_requeued: int = 0
    completed: int = 0
    erasures_finished: int = 0
    started: int = 0
    winners: int = 0
    sweeps_requeued: int = 0
    cancelled: int = 0
    parked: int = 0
    backfilled: int = 0
    attributed: int = 0


def reconcile(db: Database, now: datetime, limits: Limits, vendor_status: Callable[[str], str | None],
              queue_sends: Callable[[list[dict[str, Any]]], None], queue_fan_out: Callable[[ObjectId], None],
              deadline: float, sends_on_their_way: Callable[[], bool] = lambda: False,
              queue_sweep: Callable[[ObjectId], None] = lambda _: None) -> Settled:
    """deadline: seconds since the epoch by which the run stops; the cheap repairs come first.
    sends_on_their_way: whether the send queue still holds a message (then no unsent log is queued again)."""
    settled = Settled()
    settled.started = schedule.start_due(db, now, queue_fan_out)
    settled.winners = schedule.pick_winners(db, now, queue_fan_out)
    _restart_stalled_fan_outs(db, now, limits.fanout_stall, queue_fan_out, settled)
    settled.sweeps_requeued = schedule.restart_stalled_sweeps(db, now, limits.fanout_stall, queue_sweep)
    settled.sweeps_requeued += schedule.sweep_stranded(db, now, queue_sweep)
    settled.erasures_finished = erasure.finish_pending(db, deadline)
    for campaign in db[CAMPAIGNS].find({"status": SENDING, "fanout.done": True, "stats.queued": 0}, {"_id": 1}):
        settled.completed += complete_in(db, campaign["_id"])
    flag_earlier_tallies(db)  # a container of the release before the flag may still run after the deploy
    converted = attribution.attribute_deferred(db, limits.attribution_days)
    settled.attributed = len(converted)
    if converted:
        roll_up_due(db, converted, limits.roll_up_every)
    while time.time() < deadline:
        due = _take_due(db, now)
        _send_again(db, [log for log in due if not log.get("vendor_message_id")], now, limits, queue_sends,
                    sends_on_their_way, settled)
        _settle_unanswered(db, [log for log in due if log.get("vendor_message_id")], now, limits, vendor_status,
                           deadline, settled)
        if len(due) < PAGE:
            break
    settled.backfilled = backfill.run(db, deadline).customers
    return settled


def _take_due(db: Database, now: datetime) -> list[dict[str, Any]]:
    """The oldest due logs, leased to this run so that runs overlapping it (a schedule does not wait for the last
    run to end) leave them alone; a run that dies leaves them due again when the lease ends."""
    ids = [log["_id"] for log in db[LOGS].find({"status": QUEUED, "due_at": {"$lte": now}}, {"_id": 1})
           .sort("due_at", 1).limit(PAGE)]
    if not ids:
        return []
    token = secrets.token_hex(8)
    db[LOGS].update_many({"_id": {"$in": ids}, "status": QUEUED, "due_at": {"$lte": now}},
                         {"$set": {"due_at": now + LEASE, "reconcile": token}})
    return list(db[LOGS].find({"_id": {"$in": ids}, "reconcile": token},
                              {"to": 1, "message": 1, "subject": 1, "unsubscribe_url": 1, "vendor_message_id": 1,
                               "send_attempts": 1, "claims": 1, "vendor_asks": 1, "erased": 1, "parked": 1}))


def _settle_unanswered(db: Database, logs: list[dict[str, Any]], now: datetime, limits: Limits,
                       vendor_status: Callable[[str], str | None], deadline: float, settled: Settled) -> None:
    """Sent, but no receipt came: the vendor's word on each; FAILED no_receipt when it has no outcome."""
    for start in range(0, len(logs), ASK_CHUNK):
        outcomes, unreachable = [], []
        for log in logs[start:start + ASK_CHUNK]:
            if time.time() >= deadline:
                break
            status = vendor_status(log["vendor_message_id"])
            settled.asked_vendor += 1
            if status in FINAL:
                reason = "vendor_status" if status == FAILED else None
                outcomes.append(Outcome(log["_id"], status, log["vendor_message_id"], reason=reason))
            elif status is None and log.get("vendor_asks", 0) + 1 < MAX_VENDOR_ASKS:
                unreachable.append(log["_id"])
            else:
                settled.no_receipt += 1
                outcomes.append(Outcome(log["_id"], FAILED, log["vendor_message_id"], reason="no_receipt"))
        if outcomes:
            record_outcomes(db, outcomes, roll_up_every=limits.roll_up_every)
        if unreachable:
            # The vendor could not say (down, throttling): asked again one receipt timeout later.
            db[LOGS].update_many({"_id": {"$in": unreachable}, "status": QUEUED},
                                 {"$set": {"due_at": now + limits.receipt_timeout}, "$inc": {"vendor_asks": 1}})
            settled.vendor_unreachable += len(unreachable)
        if time.time() >= deadline:
            return


def _send_again(db: Database, logs: list[dict[str, Any]], now: datetime, limits: Limits,
                queue_sends: Callable[[list[dict[str, Any]]], None], sends_on_their_way: Callable[[], bool],
                settled: Settled) -> None:
    """Never sent: FAILED once the channel or its senders failed it often enough, else queued again if no send
    message is on its way (otherwise looked at again after the lease); an erased person's is SKIPPED (there is no one
    to send it to)."""
    erased = [log["_id"] for log in logs if log.get("erased")]
    if erased:
        record_outcomes(db, [Outcome(log_id, SKIPPED, reason=ERASED) for log_id in erased],
                        only_if={"vendor_message_id": None, "claimed_until": {"$not": {"$gte": utcnow()}}},
                        roll_up_every=limits.roll_up_every)
    logs = _running(db, [log for log in logs if not log.get("erased")], now, limits, queue_sends, settled)
    give_up = [log["_id"] for log in logs if _spent(log, limits)]
    if give_up:
        # Not a log a live sender holds now: that one may yet be sent.
        failed, _ = record_outcomes(db, [Outcome(log_id, FAILED, reason="send_failed") for log_id in give_up],
                                    only_if={"vendor_message_id": None, "claimed_until": {"$not": {"$gte": utcnow()}}},
                                    roll_up_every=limits.roll_up_every)
        settled.send_failed += failed
    retry = [log for log in logs if not _spent(log, limits)]
    # A parked log has no message on its way, whatever the queue holds: it goes at once.
    if retry and sends_on_their_way():
        retry = [log for log in retry if log.get("parked")]
    if not retry:
        return
    db[LOGS].update_many({"_id": {"$in": [log["_id"] for log in retry]}, "status": QUEUED,
                          "vendor_message_id": None}, {"$set": {"due_at": now + limits.send_timeout},
                                                       "$unset": {"parked": ""}})
    queue_sends([send_record(log) for log in retry])
    settled.requeued += len(retry)


def _running(db: Database, logs: list[dict[str, Any]], now: datetime, limits: Limits,
             queue_sends: Callable[[list[dict[str, Any]]], None], settled: Settled) -> list[dict[str, Any]]:
    """The unsent logs whose campaign may send now; a cancelled campaign's are SKIPPED cancelled, a paused one's and
    those outside their send window are parked (held by no live sender). Logs parked for a pause are looked at
    again, as a sender does: a resume or cancel meanwhile has had its sweep."""
    if not logs:
        return logs
    held, _, _ = lifecycle.not_now(db, [log["_id"] for log in logs], now)
    free = {"vendor_message_id": None, "claimed_until": {"$not": {"$gte": utcnow()}}}
    cancelled = [log_id for log_id, why in held.items() if why.cancelled]
    if cancelled:
        settled.cancelled += record_outcomes(
            db, [Outcome(log_id, SKIPPED, reason=lifecycle.SKIPPED_CANCELLED) for log_id in cancelled],
            only_if=free, roll_up_every=limits.roll_up_every)[0]
    waiting: dict[datetime | None, list[ObjectId]] = defaultdict(list)
    for log_id, why in held.items():
        if not why.cancelled:
            waiting[why.until].append(log_id)
    for until, log_ids in waiting.items():
        changes: dict[str, Any] = {"$set": {"parked": True}}
        if until is None:
            changes["$unset"] = {"due_at": ""}
        else:
            changes["$set"]["due_at"] = until
        settled.parked += db[LOGS].update_many({"_id": {"$in": log_ids}, "status": QUEUED, **free},
                                               changes).modified_count
    if waiting.get(None):
        resumed = lifecycle.after_parking(db, waiting[None], now + limits.send_timeout, limits.roll_up_every)
        if resumed:
            queue_sends([send_record(log) for log in resumed])
    return [log for log in logs if log["_id"] not in held]


def _spent(log: dict[str, Any], limits: Limits) -> bool:
    return log.get("send_attempts", 0) >= limits.max_send_attempts or log.get("claims", 0) >= MAX_CLAIMS


def _restart_stalled_fan_outs(db: Database, now: datetime, stall: timedelta,
                              queue_fan_out: Callable[[ObjectId], None], settled: Settled) -> None:
    for status in (QUEUED, SENDING):
        # A test waiting for its winner has no job to lose (crm.services.schedule.pick_winners starts the rest).
        for campaign in db[CAMPAIGNS].find({"status": status, "fanout.updated_at": {"$lte": now - stall},
                                            "fanout.done": False, "fanout.phase": {"$ne": lifecycle.WAITING}},
                                           {"fanout": 1}):
            moved = db[CAMPAIGNS].update_one(
                {"_id": campaign["_id"], "fanout.updated_at": campaign["fanout"]["updated_at"]},
                {"$set": {"fanout.updated_at": now}})
            if moved.modified_count:
                queue_fan_out(campaign["_id"])
                settled.fanouts_requeued += 1
