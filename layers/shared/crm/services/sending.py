"""The send consumer's work: one vendor call per message of at most a hundred logs, never a second send for a log.

A log is claimed before its send, for as long as one vendor call and its recording may take (never past the
invocation's end); a claim held by a live sender keeps a copy of the message from being acknowledged, and a claim
that lapsed (its sender died) frees the log for the next sender or the reconciler.
"""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from bson import ObjectId
from pydantic import ValidationError
from pymongo import UpdateOne
from pymongo.database import Database

from crm.channels import BATCH, UNCONFIRMED, Accepted, Channel, ChannelUnavailable
from crm.consent.erasure import BLANK_LOG
from crm.consent.gate import reasons_not_to_send
from crm.consent.suppressions import ERASED
from crm.db import LOGS
from crm.errors import InvalidInput, RetryableRecordError
from crm.models.campaigns import FAILED, QUEUED, SKIPPED, SendRecordIn
from crm.models.common import first_problem, utcnow
from crm.services.delivery import Outcome, record_outcomes

QUEUE_KIND = "sends"


@dataclass(frozen=True)
class SendTimeouts:
    send: timedelta  # queued but not sent by then: the send message was lost
    receipt: timedelta  # sent but no receipt by then: ask the vendor


# One vendor call per queue message: small enough to finish, with its retries, well inside the timeout.
SENDS_PER_MESSAGE = BATCH
# A claim outlasts the one vendor call it covers (and never the invocation) by this much: time to record it.
CLAIM_MARGIN = timedelta(seconds=30)
# How often a copy of a message looks again at logs another sender holds.
HELD_POLL_SECONDS = 1.0


def send_record(log: dict[str, Any]) -> dict[str, Any]:
    """What a send message carries for one log: what the vendor is sent, and the log it is for (and, for e-mail,
    the subject and the unsubscribe link)."""
    record = {"log_id": str(log["_id"]), "to": log["to"], "message": log["message"]}
    for optional in ("subject", "unsubscribe_url"):
        if log.get(optional):
            record[optional] = log[optional]
    return record


def send_records(db: Database, channel: Channel, records: list[Any], timeouts: SendTimeouts,
                 deadline: float | None = None) -> None:
    """Sends each record's message unless its log was already sent; raises after the batch if any must retry.

    deadline: when this invocation is cut off (seconds since the epoch); sends that could not finish by then are
    handed back rather than started.
    """
    valid, unsendable, invalid = _parse(records)
    if unsendable:
        # A record that can never be valid (say, a message longer than the vendor takes) fails its log for good.
        record_outcomes(db, [Outcome(log_id, FAILED, reason="invalid_message") for log_id in unsendable])
    retry: list[str] = []
    for start in range(0, len(valid), BATCH):
        batch = valid[start:start + BATCH]
        if deadline is not None and deadline - time.time() < channel.longest_call_seconds:
            retry += [s.log_id for s in batch]
            continue
        retry += _send_batch(db, channel, batch, timeouts, deadline)
    if invalid:
        raise InvalidInput(f"{len(invalid)} of {len(records)} send records are invalid", invalid)
    if retry:
        raise RetryableRecordError(f"{len(retry)} message(s) must be sent later",
                                   [{"loc": ["log_id"], "msg": log_id} for log_id in retry[:20]])


def _parse(records: list[Any]) -> tuple[list[SendRecordIn], list[ObjectId], list[dict[str, Any]]]:
    valid, unsendable, invalid = [], [], []
    seen: set[str] = set()
    for index, record in enumerate(records):
        try:
            send = SendRecordIn.model_validate(record if isinstance(record, dict) else {})
            if send.log_id not in seen:  # a log named twice in one message is sent once
                seen.add(send.log_id)
                valid.append(send)
        except ValidationError as exc:
            log_id = record.get("log_id") if isinstance(record, dict) else None
            if isinstance(log_id, str) and ObjectId.is_valid(log_id) and len(log_id) == 24:
                unsendable.append(ObjectId(log_id))
            else:
                invalid.append({"loc": ["records", index], "msg": first_problem(exc)})
    return valid, unsendable, invalid


def _send_batch(db: Database, channel: Channel, batch: list[SendRecordIn], timeouts: SendTimeouts,
                deadline: float | None) -> list[str]:
    """Sends what this sender can claim; the log ids to try again later.

    Logs another live sender holds (a copy of this message delivered at the same time) are waited for while
    this invocation has time: once that sender has sent them there is nothing left to do, and if it died its
    claim lapses and this one sends them. Only what is still held at the end makes the message come back.
    """
    pending, retry = batch, []
    while pending:
        ids = [ObjectId(s.log_id) for s in pending]
        token, claimed = _claim(db, ids, deadline, timedelta(seconds=channel.longest_call_seconds))
        held, held_until = _held_by_others(db, [i for i in ids if str(i) not in claimed])
        retry += _send_checked(db, channel, [s for s in pending if s.log_id in claimed], token, timeouts, deadline)
        pending = [s for s in pending if s.log_id in held]
        # Waiting is worth it only if the other claim ends while there is still time for a call of our own.
        if pending and (deadline is None or held_until.timestamp() > deadline - channel.longest_call_seconds):
            return retry + [s.log_id for s in pending]
        if pending:
            time.sleep(HELD_POLL_SECONDS)
    return retry


def _send_checked(db: Database, channel: Channel, claimed: list[SendRecordIn], token: str, timeouts: SendTimeouts,
                  deadline: float | None) -> list[str]:
    """The claimed sends, consent checked again before every `checked_every` of them; the log ids to try later."""
    retry: list[str] = []
    stop_at = time.time() + channel.longest_call_seconds
    for start in range(0, len(claimed), channel.checked_every):
        chunk = claimed[start:start + channel.checked_every]
        if start and time.time() >= stop_at:
            retry += [s.log_id for s in claimed[start:]]  # past the claim's time: the rest come back
            break
        sends = _may_be_sent(db, chunk, token)
        if sends:
            # Within the claim's time, whatever time each call would allow itself.
            retry += _call_vendor(db, channel, sends, token, timeouts,
                                  stop_at if deadline is None else min(deadline, stop_at))
    return retry


def _may_be_sent(db: Database, sends: list[SendRecordIn], token: str) -> list[SendRecordIn]:
    """Claimed sends whose recipient may still be messaged; the others are SKIPPED with the reason, under the claim."""
    if not sends:
        return sends
    reasons = reasons_not_to_send(db, [ObjectId(s.log_id) for s in sends])
    if reasons:
        # An erased person's log written after their erasure blanked the others (a fan-out racing it) is blanked now.
        record_outcomes(db, [Outcome(log_id, SKIPPED, reason=reason, also=BLANK_LOG if reason == ERASED else None)
                             for log_id, reason in reasons.items()], only_if={"claim": token})
    return [s for s in sends if ObjectId(s.log_id) not in reasons]


def _call_vendor(db: Database, channel: Channel, sends: list[SendRecordIn], token: str, timeouts: SendTimeouts,
                 deadline: float | None) -> list[str]:
    """One vendor call for claimed logs, its outcome recorded under the claim; the log ids to try again later.

    A channel that would deliver a repeated message twice has each log marked sent, unconfirmed, just before its
    message is handed over. A sender that dies after that leaves the mark, which no later claim takes, so it is
    never sent again (its events, found by the log id, or the reconciler settle it): at most once, never twice.
    A mark whose message was not handed over after all is taken off again."""
    messages = [s.model_dump(exclude_none=True) for s in sends]
    marked: set[str] = set()
    try:
        if channel.repeats_safely:
            outcomes = channel.send(messages, deadline)
        else:
            outcomes = channel.send(messages, deadline, lambda log_id: _mark(db, log_id, token, timeouts, marked))
    except ChannelUnavailable:
        _unmark(db, marked, token, timeouts)  # the channel took none of them
        db[LOGS].update_many({"_id": {"$in": [ObjectId(s.log_id) for s in sends]}, "claim": token},
                             {"$unset": {"claimed_until": ""}, "$set": {"due_at": utcnow() + timeouts.send}})
        return [s.log_id for s in sends]
    # Any other error keeps every mark: the channel may have taken those messages.
    _unmark(db, marked - set(outcomes), token, timeouts)
    now = utcnow()
    accepted = [UpdateOne({"_id": ObjectId(log_id), "status": QUEUED, "claim": token,
                           "vendor_message_id": {"$in": [None, UNCONFIRMED + log_id]}},
                          {"$set": {"vendor_message_id": result.vendor_message_id, "sent_at": now, "updated_at": now,
                                    # No receipt by then, the reconciler asks the vendor.
                                    "due_at": now + timeouts.receipt},
                           "$unset": {"claimed_until": ""}})
                for log_id, result in outcomes.items() if isinstance(result, Accepted)]
    if accepted:
        db[LOGS].bulk_write(accepted, ordered=False)
    rejected = [Outcome(ObjectId(log_id), FAILED, reason=result.reason, also={"vendor_message_id": None})
                for log_id, result in outcomes.items() if not isinstance(result, Accepted)]
    if rejected:
        # Under this sender's claim: one whose claim lapsed must not fail a log another sender has since sent.
        record_outcomes(db, rejected, only_if={"claim": token})
    # A log the vendor's reply did not mention was not sent: its message comes back for it.
    return [s.log_id for s in sends if s.log_id not in outcomes]


def _mark(db: Database, log_id: str, token: str, timeouts: SendTimeouts, marked: set[str]) -> bool:
    """Marks a log sent, unconfirmed, while this sender's claim on it lasts (and its person is not erased); whether
    it may be handed over. Each attempt of the same message finds its own mark."""
    now, mark = utcnow(), UNCONFIRMED + log_id
    if not db[LOGS].update_one(
            {"_id": ObjectId(log_id), "status": QUEUED, "claim": token, "claimed_until": {"$gte": now},
             "erased": {"$ne": True}, "vendor_message_id": {"$in": [None, mark]}},
            {"$set": {"vendor_message_id": mark, "sent_at": now, "due_at": now + timeouts.receipt}}).matched_count:
        return False
    marked.add(log_id)
    return True


def _unmark(db: Database, log_ids: set[str], token: str, timeouts: SendTimeouts) -> None:
    """Marked logs whose message was not handed over after all: unsent again, their message comes back for them."""
    if log_ids:
        db[LOGS].update_many(
            {"_id": {"$in": [ObjectId(i) for i in log_ids]}, "claim": token,
             "vendor_message_id": {"$in": [UNCONFIRMED + i for i in log_ids]}},
            {"$set": {"vendor_message_id": None, "sent_at": None, "due_at": utcnow() + timeouts.send}})


def _claim(db: Database, log_ids: list[ObjectId], deadline: float | None, call: timedelta) -> tuple[str, set[str]]:
    """Only QUEUED, not yet sent logs that no live sender holds are claimed; returns the claim and the claimed ids.
    Each claim counts as an attempt to send (the reconciler gives up on a log after a few)."""
    now, token = utcnow(), secrets.token_hex(8)
    # Sized to the call, so that a copy of the message delivered meanwhile finds the claim lapsed soon after a
    # sender died; never past the invocation's own end.
    until = now + call + CLAIM_MARGIN
    if deadline is not None:
        until = min(until, datetime.fromtimestamp(deadline, timezone.utc) + CLAIM_MARGIN)
    # Unclaimed or expired, said without a top-level $or so that every server reads the logs by _id.
    db[LOGS].update_many(
        {"_id": {"$in": log_ids}, "status": QUEUED, "vendor_message_id": None,
         "claimed_until": {"$not": {"$gte": now}}},
        # Should this sender die, the log is due when its claim lapses.
        {"$set": {"claimed_until": until, "claim": token, "due_at": until}, "$inc": {"send_attempts": 1}})
    return token, {str(d["_id"]) for d in db[LOGS].find({"_id": {"$in": log_ids}, "claim": token}, {"_id": 1})}


def _held_by_others(db: Database, log_ids: list[ObjectId]) -> tuple[set[str], datetime]:
    """Of logs this sender could not claim, those another live sender holds (their message is not done yet), and
    when the last of those claims ends."""
    # Marked sent, unconfirmed, under a live claim is held too: its sender may still find it was not handed over.
    held = list(db[LOGS].find({"_id": {"$in": log_ids}, "status": QUEUED, "claimed_until": {"$gte": utcnow()}},
                              {"claimed_until": 1})) if log_ids else []
    return {str(d["_id"]) for d in held}, max((d["claimed_until"] for d in held), default=utcnow())
