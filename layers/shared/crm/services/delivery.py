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
from crm.db import CAMPAIGNS, CUSTOMERS, LOGS, in_chunks, literals, per_document
from crm.models.campaigns import COMPLETED, QUEUED, SENDING, SENT, SKIPPED_CONTROL
from crm.models.common import utcnow
from crm.rules.activity import message_activity_writes

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
            if status == SENT:
                # A receipt that came before its send was recorded: the message was sent by the receipt's time at
                # the latest (what attribution, the frequency cap and a customer's activity count from).
                changes["sent_at"] = {"$ifNull": ["$sent_at", per_document(ids, [o.at or now for o in run])]}
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


# What a roll-up reads of a log: its tallies, and what the customer's activity (crm.rules.activity) and the
# variant's counters take from it.
ROLL_UP_FIELDS = {"tally": 1, "tally_revenue": 1, "variant": 1, "status": 1, "reason": 1, "customer_id": 1,
                  "campaign_id": 1, "sent_at": 1, "events": 1}
# Tallies that a customer's activity records (the message received, opened, clicked, converted).
ACTIVITY_TALLIES = frozenset({"sent", "opened", "clicked", "converted"})
# Tallies counted per variant too (the report's variants).
VARIANT_TALLIES = ("sent", "opened", "clicked", "converted")
# A tally naming a campaign path (a dot in it) moves that path; only these. Any other moves `stats.<tally>`.
PATH_TALLIES = ("link_stats.", "control.")


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
    variants: dict[str, int] | None = None
    while logs := _pending(db, {"campaign_id": campaign_id}, ROLL_UP_FIELDS, MAX_ROLL_UP_LOGS):
        cleared_here = 0
        start = 0
        if variants is None and any(log.get("variant") is not None for log in logs):
            variants = _variant_places(db, campaign_id)
        recorded = -1
        while start < len(logs):
            chunk = logs[start:start + ROLL_UP_LOGS]
            if recorded < start:
                # Before the counters, once a chunk (not again for a try that met another transaction): a roll-up
                # that dies between the two leaves the tallies, and the next writes the same activity, to no effect.
                _record_activity(db, chunk)
                recorded = start
            try:
                with db.client.start_session() as session:
                    cleared = session.with_transaction(lambda s: _roll_up_in(
                        db, s, campaign_id, chunk, variants or {}, 0 if counted else every, yields=every > 0))
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


def _roll_up_in(db: Database, session: ClientSession, campaign_id: ObjectId, logs: list[dict],
                variants: dict[str, int], every: float, yields: bool) -> int | None:
    """The campaign is written in the transaction before any log, so that roll-ups of it at once conflict there and
    the others, retried, find its turn taken. The turn is taken here rather than by a write outside a transaction:
    the local server holds such a write against a transaction's document until that transaction ends, and the
    transaction waits for it in turn. yields: a conflict there gives the turn up rather than starting over, as
    often as the other transaction (a fan-out page writing hundreds of logs) lasts. Each log is cleared only if it
    still holds the tallies read; one that changed meanwhile (an event added to it, another roll-up cleared it) is
    taken back out of the counters, in a second write only then, and left to the next roll-up. How many logs it
    cleared; None when another took the turn."""
    # A log flagged with no tally (an earlier roll-up cleared only the tally) counts nothing; its flag goes too.
    moves = _moves(logs, variants)
    now = utcnow()
    turn = _turn(every) if every > 0 else {}
    try:
        campaign = db[CAMPAIGNS].find_one_and_update(
            {"_id": campaign_id, **turn},
            {"$inc": _with_queued(moves), "$set": {"rolled_up_at": now}},
            projection={"stats.queued": 1, "fanout.done": 1, "status": 1},
            return_document=ReturnDocument.AFTER, session=session)
    except PyMongoError as exc:
        if yields and exc.has_error_label("TransientTransactionError"):
            raise _Contended from exc
        raise
    if campaign is None and turn:
        return None  # rolled up a moment ago: these tallies are left to the next roll-up
    # Logs alike move the counters alike, so a run of them that was not all cleared takes back as many moves.
    alike: defaultdict[tuple, list[dict]] = defaultdict(list)
    for log in logs:
        alike[(tuple(log["tally"]) if "tally" in log else None, log.get("tally_revenue"),
               variants.get(log.get("variant")), _of_control(log))].append(log)
    cleared, missed = 0, Counter()
    for (tally, revenue, _, _), group in alike.items():
        held = {"tally": list(tally) if tally is not None else {"$exists": False},
                "tally_revenue": revenue if revenue is not None else {"$exists": False}}
        for run in in_chunks(group):
            done = db[LOGS].update_many({"_id": {"$in": [log["_id"] for log in run]}, **PENDING, **held},
                                        {"$unset": {"tally": "", "tally_revenue": "", "pending": ""}},
                                        session=session).modified_count
            cleared += done
            for path, n in _moves(run[:1], variants).items():
                missed[path] += n * (len(run) - done)
    missed = Counter({path: n for path, n in missed.items() if n})
    if missed and campaign:
        taken_back = _with_queued(missed)
        db[CAMPAIGNS].update_one({"_id": campaign_id}, {"$inc": {path: -n for path, n in taken_back.items()}},
                                 session=session)
        campaign["stats"]["queued"] -= taken_back["stats.queued"]
    if campaign and campaign["stats"]["queued"] == 0 and campaign["fanout"]["done"]:
        complete_in(db, campaign_id, session)
    return cleared


def _moves(logs: list[dict], variants: dict[str, int]) -> Counter:
    """The campaign paths these logs' tallies move, and by how much: `stats.<tally>` (a tally with a dot names its
    own path: a link's counters, the control group's), the variant's counters beside, and the revenue attributed
    to them (to the control's when they are the control's)."""
    moves: Counter = Counter()
    for log in logs:
        place = variants.get(log.get("variant"))
        for tally in log.get("tally", ()):
            moves[_tally_path(tally)] += 1
            if place is not None and tally in VARIANT_TALLIES:
                moves[f"variant_stats.{place}.{tally}"] += 1
        revenue = log.get("tally_revenue")
        if revenue:
            moves["control.revenue" if _of_control(log) else "stats.revenue"] += revenue
            if place is not None and not _of_control(log):
                moves[f"variant_stats.{place}.revenue"] += revenue
    return moves


def _with_queued(moves: Counter) -> dict[str, Any]:
    """The moves and what they take from `queued`: each log leaving QUEUED adds to one final counter."""
    return {**moves, "stats.queued": -sum(moves[f"stats.{c}"] for c in FINAL_COUNTERS)}


def _tally_path(tally: str) -> str:
    if "." not in tally:
        return f"stats.{tally}"
    if not tally.startswith(PATH_TALLIES):
        raise ValueError(f"a tally names no campaign counter: {tally!r}")
    return tally


def _of_control(log: dict) -> bool:
    return log.get("reason") == SKIPPED_CONTROL


def _variant_places(db: Database, campaign_id: ObjectId) -> dict[str, int]:
    """Each variant's place in the campaign (its counters are kept under it: a name may hold any character)."""
    campaign = db[CAMPAIGNS].find_one({"_id": campaign_id}, {"variants.name": 1}) or {}
    return {v["name"]: place for place, v in enumerate(campaign.get("variants") or [])}


def _record_activity(db: Database, logs: list[dict]) -> None:
    """The customers' activity (what behaviour rules read) takes what these logs' tallies say happened."""
    # A log that names no customer (none is written so; one would otherwise stop every roll-up of its campaign)
    # has no activity to record.
    writes = message_activity_writes(log for log in logs if ACTIVITY_TALLIES.intersection(log.get("tally", ()))
                                     and log.get("customer_id") is not None)
    if writes:
        db[CUSTOMERS].bulk_write(writes, ordered=False)


def complete_in(db: Database, campaign_id: ObjectId, session: ClientSession | None = None) -> bool:
    """COMPLETED once the fan-out has finished and no log is still QUEUED; in the caller's transaction if given. A
    paused campaign completes once resumed; a cancelled one stays CANCELLED."""
    result = db[CAMPAIGNS].update_one(
        {"_id": campaign_id, "fanout.done": True, "stats.queued": 0, "status": {"$in": [QUEUED, SENDING]}},
        {"$set": {"status": COMPLETED, "completed_at": utcnow()}}, session=session)
    return result.modified_count == 1
