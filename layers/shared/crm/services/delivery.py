"""Delivery outcomes: a log's status only moves forward, applied in bulk, and the campaign's counters catch up by a
roll-up per batch, never a write to the campaign per recipient.

Who writes what (v3):
- a log's transition (QUEUED → SENT | FAILED | SKIPPED, or an event's first mark: delivered, opened, ...) is an
  update conditioned on where the log moves from, that also pushes the counter it moves onto the log's `tally`;
  logs moving alike share one update (outcome_writes); a batch of outcomes is one bulk write, no transaction;
- `roll_up` moves a campaign's counters by what its logs' tallies hold and clears those tallies, in one
  transaction that takes the campaign first and then the logs (the fan-out's page transaction takes them in the
  same order), so each tally is counted exactly once: a consumer that dies between its bulk write and its
  roll-up leaves the tallies for the next roll-up of that campaign (its own retry, another batch's, or the
  schedule's: crm.consumers.roll_up). Roll-ups take turns, one a campaign per ROLL_UP_SECONDS, and one that
  meets another transaction on the campaign gives its turn up rather than starting over.
"""
from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable

from bson import ObjectId
from pymongo import ReturnDocument, UpdateMany
from pymongo.client_session import ClientSession
from pymongo.database import Database
from pymongo.errors import PyMongoError

from crm.consent.erasure import reason_kept
from crm.db import CAMPAIGNS, LOGS, in_chunks, literals, per_document
from crm.models.campaigns import COMPLETED, QUEUED, SENDING
from crm.models.common import utcnow

# The counters a log's move out of QUEUED adds to; each also takes one from `queued`.
FINAL_COUNTERS = ("sent", "failed", "skipped")
# Logs one roll-up transaction clears: a few bulk statements, whatever the campaign's size.
ROLL_UP_LOGS = 2000
# Logs one roll-up reads (and counts, ROLL_UP_LOGS a transaction); a larger backlog is counted by the next.
MAX_ROLL_UP_LOGS = 20 * ROLL_UP_LOGS
# How long a patient roll-up waits before it tries a campaign another transaction held again.
CONTENDED_PAUSE = 0.5

# Set beside a tally until it is counted: a scalar, so its index (crm.db, partial: only logs waiting for a roll-up)
# is not multikey; a server may not walk a multikey index as it walks others (the local one reads the whole
# collection for it), and an equality on a field a planner takes on its own.
PENDING = {"pending": True}
# The index the release before the flag found tallies by.
EARLIER_TALLY_INDEX = "tally_pending"


@dataclass(frozen=True)
class Outcome:
    log_id: ObjectId
    status: str  # SENT | FAILED | SKIPPED
    vendor_message_id: str | None = None
    at: datetime | None = None
    reason: str | None = None
    # More of the log to change with its status, in the same write (an erased person's log is blanked).
    also: dict | None = None


def outcome_writes(outcomes: Iterable[Outcome], only_if: dict | None = None,
                   now: datetime | None = None) -> list[UpdateMany]:
    """Each outcome's move of a QUEUED log (matching only_if too, when given), tallied for the roll-up; a receipt
    must name the message the vendor accepted for its log (or a send not yet recorded), and repeated, it matches
    nothing. One update per run of IN_CHUNK logs moving alike (status, reason, the more to change), each log
    given its own receipt time and vendor message id."""
    now = now or utcnow()
    alike: dict[tuple, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        named = outcome.vendor_message_id is not None
        alike[(outcome.status, outcome.reason, named, repr(outcome.also))].append(outcome)
    writes = []
    for (status, reason, named, _), group in alike.items():
        for run in in_chunks(group):
            ids = [o.log_id for o in run]
            query: dict[str, Any] = {"_id": {"$in": ids}, "status": QUEUED, **(only_if or {})}
            changes = {**literals({"status": status, "updated_at": now, **(run[0].also or {}), **PENDING}),
                       # A receipt that comes after its person was erased leaves no vendor's text on the log.
                       "reason": reason_kept({"$literal": status}, {"$literal": reason}),
                       "delivered_at": per_document(ids, [o.at or now for o in run]),
                       "tally": {"$concatArrays": [{"$ifNull": ["$tally", []]}, [status.lower()]]}}
            if named:
                # A message id names one message (record_outcomes has left out receipts for another message
                # than the one a log holds); a per-log $expr here made the local server read every log.
                vendor_ids = [o.vendor_message_id for o in run]
                query["vendor_message_id"] = {"$in": [None, *vendor_ids]}
                changes["vendor_message_id"] = per_document(ids, vendor_ids)
            writes.append(UpdateMany(query, [{"$set": changes}, {"$unset": ["claimed_until", "due_at"]}]))
    return writes


def record_outcomes(db: Database, outcomes: Iterable[Outcome], only_if: dict | None = None,
                    roll_up_every: float = 0) -> tuple[int, int]:
    """Applies each outcome to a QUEUED log only (and only to logs matching only_if, when given), then rolls up
    their campaigns that were not rolled up in the last roll_up_every seconds; returns (applied, ignored).
    Duplicates and late ones are ignored."""
    latest = {o.log_id: o for o in outcomes}
    if not latest:
        return 0, 0
    own = _of_own_messages(db, list(latest.values()))
    modified = db[LOGS].bulk_write(outcome_writes(own, only_if), ordered=False).modified_count if own else 0
    # Also when nothing moved now: a first delivery of these outcomes that died before its roll-up left tallies.
    roll_up_due(db, list(latest), roll_up_every)
    return modified, len(latest) - modified


def _of_own_messages(db: Database, outcomes: list[Outcome]) -> list[Outcome]:
    """The outcomes that name no message, or the one their log holds (or none yet: a receipt before its send was
    recorded). A log's message id only ever goes from none to its own, so what is read here still holds when the
    update runs."""
    named = [o.log_id for o in outcomes if o.vendor_message_id is not None]
    held = {log["_id"]: log.get("vendor_message_id") for run in in_chunks(named)
            for log in db[LOGS].find({"_id": {"$in": run}}, {"vendor_message_id": 1})}
    return [o for o in outcomes if o.vendor_message_id is None or held.get(o.log_id) in (None, o.vendor_message_id)]


def roll_up_due(db: Database, log_ids: list[ObjectId], every: float) -> None:
    """Rolls up the campaigns of these logs that were not rolled up in the last `every` seconds. Skipping the
    others bounds the writes to a busy campaign to one per `every` seconds, however many batches its outcomes
    come in; the scheduled roll-up (crm.consumers.roll_up) counts what the last batches left within `every`."""
    campaign_ids = {campaign_id for run in in_chunks(log_ids)
                    for campaign_id in db[LOGS].distinct("campaign_id", {"_id": {"$in": run}})}
    for campaign_id in campaign_ids:
        roll_up(db, campaign_id, every)


def roll_up_pending(db: Database, every: float = 0, patience: float = 0) -> int:
    """Rolls up every campaign with tallies not yet counted (found on the partial index of logs waiting for a
    roll-up) and, when every > 0, not rolled up in the last `every` seconds; how many logs it counted. A schedule
    that takes its turn like the consumers do leaves a busy campaign to them, rather than meeting them in conflicting
    transactions that all start over; its patience (roll_up) gets it past a fan-out's pages."""
    return sum(roll_up(db, campaign_id, every, patience)
               for campaign_id in db[LOGS].distinct("campaign_id", PENDING))


def flag_earlier_tallies(db: Database) -> int:
    """Flags logs tallied by the release before the flag (a container of it may still run after the deploy), found
    through that release's own index on the tally while it exists; how many. The deploy's migration and each
    reconciler run call it; the release after this one drops that index."""
    if EARLIER_TALLY_INDEX not in db[LOGS].index_information():
        return 0
    return db[LOGS].update_many({"tally": {"$exists": True}, "pending": {"$exists": False}}, {"$set": PENDING},
                                hint=EARLIER_TALLY_INDEX).modified_count


def _pending(db: Database, query: dict, fields: dict, limit: int = 0,
             session: ClientSession | None = None) -> list[dict]:
    """Logs with a tally not yet counted, read through the partial index that holds only those."""
    return list(db[LOGS].find({**PENDING, **query}, fields, session=session).limit(limit))


def roll_up(db: Database, campaign_id: ObjectId, every: float = 0, patience: float = 0) -> int:
    """Moves the campaign's counters by its logs' tallies and clears them; completes the campaign once nothing is
    QUEUED. How many logs it counted: none when (every > 0) the campaign was rolled up in the last `every`
    seconds.

    One that takes turns and meets another transaction on the campaign (a fan-out page) tries again every
    CONTENDED_PAUSE seconds for `patience` seconds, then leaves the tallies to the next turn: the consumers give up
    at once (the schedule comes next), the schedule waits out the pages of a fan-out (pages follow each other
    closely, so one that gave up at once would not count until the fan-out ended), a write to the campaign a try.

    The waiting tallies are read once, outside a transaction, and counted ROLL_UP_LOGS logs a transaction, each
    clearing exactly the tallies it counts: a backlog costs one read, not one a transaction (the local server reads
    every match of a query before its limit, so re-reading a growing backlog per transaction made each roll-up
    slower than the last). One that takes turns reads once a turn; one that does not reads again while logs changed
    under it or more wait, as long as it makes progress."""
    counted = 0
    give_up_at = time.monotonic() + patience
    if every > 0 and not db[CAMPAIGNS].find_one({"_id": campaign_id, **_turn(every)}, {"_id": 1}):
        return 0  # another took the turn: read, not found in a transaction after reading its logs
    while logs := _pending(db, {"campaign_id": campaign_id}, {"tally": 1}, MAX_ROLL_UP_LOGS):
        cleared_here = 0
        start = 0
        while start < len(logs):
            chunk = logs[start:start + ROLL_UP_LOGS]
            try:
                with db.client.start_session() as session:
                    cleared = session.with_transaction(lambda s: _roll_up_in(
                        db, s, campaign_id, chunk, 0 if counted else every, yields=every > 0))
            except _Contended:
                if time.monotonic() + CONTENDED_PAUSE > give_up_at:
                    return counted  # the tallies wait for the next turn
                time.sleep(CONTENDED_PAUSE)
                continue
            if cleared is None:
                return counted  # another took the turn
            counted += cleared
            cleared_here += cleared
            start += ROLL_UP_LOGS
        if every > 0 or not cleared_here or (cleared_here == len(logs) < MAX_ROLL_UP_LOGS):
            return counted
    return counted


class _Contended(Exception):
    """A roll-up that takes turns met another transaction on the campaign (a roll-up, a fan-out page)."""


def _turn(every: float) -> dict:
    """A campaign whose turn to be rolled up has come: its last roll-up was `every` seconds ago or more."""
    return {"rolled_up_at": {"$not": {"$gte": utcnow() - timedelta(seconds=every)}}}


def _roll_up_in(db: Database, session: ClientSession, campaign_id: ObjectId, logs: list[dict], every: float,
                yields: bool) -> int | None:
    """The campaign is written in the transaction before any log, so that roll-ups of it at once conflict there and
    the others, retried, find its turn taken. The turn is taken here rather than by a write outside a transaction:
    the local server holds such a write against a transaction's document until that transaction ends, and the
    transaction waits for it in turn. yields: a conflict there gives the turn up rather than starting over, as
    often as the other transaction (a fan-out page writing hundreds of logs) lasts. Each log is cleared only if it
    still holds the tally read; one that changed meanwhile (an event added to it, another roll-up cleared it) is
    taken back out of the counters, in a second write only then, and left to the next roll-up. How many logs it
    cleared; None when another took the turn."""
    # A log flagged with no tally (an earlier roll-up cleared only the tally) counts nothing; its flag goes too.
    counts: Counter[str] = Counter(t for log in logs for t in log.get("tally", []))
    queued = sum(counts[c] for c in FINAL_COUNTERS)
    now = utcnow()
    turn = _turn(every) if every > 0 else {}
    try:
        campaign = db[CAMPAIGNS].find_one_and_update(
            {"_id": campaign_id, **turn},
            {"$inc": {**{f"stats.{c}": n for c, n in counts.items()}, "stats.queued": -queued},
             "$set": {"rolled_up_at": now}},
            projection={"stats.queued": 1, "fanout.done": 1, "status": 1},
            return_document=ReturnDocument.AFTER, session=session)
    except PyMongoError as exc:
        if yields and exc.has_error_label("TransientTransactionError"):
            raise _Contended from exc
        raise
    if campaign is None and turn:
        return None  # rolled up a moment ago: these tallies are left to the next roll-up
    alike: defaultdict[tuple[str, ...] | None, list[ObjectId]] = defaultdict(list)
    for log in logs:
        alike[tuple(log["tally"]) if "tally" in log else None].append(log["_id"])
    cleared, missed = 0, Counter()
    for tally, ids in alike.items():
        held = {"tally": list(tally)} if tally is not None else {"tally": {"$exists": False}}
        for run in in_chunks(ids):
            done = db[LOGS].update_many({"_id": {"$in": run}, **PENDING, **held},
                                        {"$unset": {"tally": "", "pending": ""}}, session=session).modified_count
            cleared += done
            missed.update({t: len(run) - done for t in tally or ()})
    missed = +missed
    if missed and campaign:
        queued_back = sum(missed[c] for c in FINAL_COUNTERS)
        db[CAMPAIGNS].update_one({"_id": campaign_id}, {"$inc": {
            **{f"stats.{c}": -n for c, n in missed.items()}, "stats.queued": queued_back}}, session=session)
        campaign["stats"]["queued"] += queued_back
    if campaign and campaign["stats"]["queued"] == 0 and campaign["fanout"]["done"]:
        complete_in(db, campaign_id, session)
    return cleared


def complete_in(db: Database, campaign_id: ObjectId, session: ClientSession | None = None) -> bool:
    """COMPLETED once the fan-out has finished and no log is still QUEUED; in the caller's transaction if given. A
    paused campaign completes once resumed; a cancelled one stays CANCELLED."""
    result = db[CAMPAIGNS].update_one(
        {"_id": campaign_id, "fanout.done": True, "stats.queued": 0, "status": {"$in": [QUEUED, SENDING]}},
        {"$set": {"status": COMPLETED, "completed_at": utcnow()}}, session=session)
    return result.modified_count == 1
