"""The send consumer's work: one channel call per message of at most a hundred logs, never a second send for a log.

A log is claimed before its send, for as long as one channel call and its recording may take (never past the
invocation's end); a claim held by a live sender keeps a copy of the message from being sent twice, and a claim
that lapsed (its sender died) frees the log for the next sender or the reconciler.

What a call did not send is given back at once, as a new send message, and the one it came in is done with: not
reached in the call's time, at once; refused for now by a channel that cannot send (throttling, a quota, sending
paused), after WAIT_SECONDS, without counting; failed by the channel (5xx, timeouts), after RETRY_SECONDS, counted,
and FAILED send_failed once that happened max_attempts times. So a recipient fails only when the channel was asked.
"""
from __future__ import annotations

import secrets
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from bson import ObjectId
from cachetools import LRUCache
from pydantic import ValidationError
from pymongo.database import Database

from crm.channels import BATCH, UNCONFIRMED, Accepted, Channel, ChannelUnavailable, Deferred, Rejected
from crm.channels.rate import SharedRateLimiter
from crm.consent.erasure import BLANK_LOG
from crm.consent.gate import reasons_not_to_send
from crm.consent.suppressions import ERASED
from crm.db import CHANNEL_RATES, LOGS, in_chunks, literals, per_document
from crm.engagement.links import LinkTracker
from crm.errors import InvalidInput
from crm.models.campaigns import FAILED, QUEUED, SKIPPED, SendRecordIn
from crm.models.common import first_problem, utcnow
from crm.services import frequency_cap, lifecycle
from crm.services.delivery import Outcome, record_outcomes

QUEUE_KIND = "sends"


@dataclass(frozen=True)
class SendPolicy:
    send: timedelta  # queued but not sent by then: the send message was lost
    receipt: timedelta  # sent but no receipt by then: ask the vendor
    max_attempts: int = 3  # the channel failed a message this often: FAILED send_failed
    roll_up_every: float = 0.0  # crm.services.delivery.roll_up_due
    frequency_cap: tuple[int, int] | None = None  # crm.services.frequency_cap
    links: LinkTracker | None = None  # TRACK_CLICKS: the messages' links as handed to the channel


# Send records to queue again, and after how many seconds.
Requeue = Callable[[list[dict[str, Any]], int], None]

# A claim outlasts the one vendor call it covers (and never the invocation) by this much: time to record it.
CLAIM_MARGIN = timedelta(seconds=30)
# How often a copy of a message looks again at logs another sender holds.
HELD_POLL_SECONDS = 1.0
# When a message the channel failed, or could not take now, comes back.
RETRY_SECONDS = 30
WAIT_SECONDS = 60
# SQS delays a message 15 minutes at the most.
MAX_DELAY_SECONDS = 900


def send_record(log: dict[str, Any]) -> dict[str, Any]:
    """What a send message carries for one log: what the vendor is sent, and the log it is for (and, for e-mail,
    the subject and the unsubscribe link)."""
    record = {"log_id": str(log["_id"]), "to": log["to"], "message": log["message"]}
    for optional in ("subject", "unsubscribe_url"):
        if log.get(optional):
            record[optional] = log[optional]
    return record


class _Later:
    """The sends given back, by the seconds their new message waits."""

    def __init__(self) -> None:
        self.by_delay: dict[int, list[SendRecordIn]] = defaultdict(list)

    def add(self, sends: list[SendRecordIn], delay_seconds: float) -> None:
        if sends:
            self.by_delay[max(0, min(MAX_DELAY_SECONDS, int(delay_seconds)))] += sends

    def queue(self, requeue: Requeue) -> None:
        for delay, sends in sorted(self.by_delay.items()):
            requeue([s.model_dump(exclude_none=True) for s in sends], delay)


def send_records(db: Database, channel: Channel, records: list[Any], policy: SendPolicy, requeue: Requeue,
                 deadline: float | None = None) -> None:
    """Sends each record's message unless its log was already sent; what it did not send is queued again.

    deadline: when this invocation is cut off (seconds since the epoch); sends that could not finish by then are
    given back rather than started.
    """
    valid, unsendable, invalid = _parse(records)
    if unsendable:
        # A record that can never be valid (say, a message longer than the vendor takes) fails its log for good.
        record_outcomes(db, [Outcome(log_id, FAILED, reason="invalid_message") for log_id in unsendable],
                        roll_up_every=policy.roll_up_every)
    later = _Later()
    for start in range(0, len(valid), BATCH):
        batch = valid[start:start + BATCH]
        if deadline is not None and deadline - time.time() < channel.longest_call_seconds:
            later.add(batch, 0)
            continue
        _send_batch(db, channel, batch, policy, deadline, later)
    later.queue(requeue)
    if invalid:
        raise InvalidInput(f"{len(invalid)} of {len(records)} send records are invalid", invalid)


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


def _send_batch(db: Database, channel: Channel, batch: list[SendRecordIn], policy: SendPolicy,
                deadline: float | None, later: _Later) -> None:
    """Sends what this sender can claim.

    Logs another live sender holds (a copy of this message delivered at the same time) are waited for while
    this invocation has time: once that sender has sent them there is nothing left to do, and if it died its
    claim lapses and this one sends them. What is still held at the end is given back for when that claim ends.
    """
    pending = batch
    while pending:
        ids = [ObjectId(s.log_id) for s in pending]
        token, claimed = _claim(db, ids, deadline, timedelta(seconds=channel.longest_call_seconds))
        held, held_until = _held_by_others(db, [i for i in ids if str(i) not in claimed])
        _send_checked(db, channel, [s for s in pending if s.log_id in claimed], token, policy, deadline, later)
        pending = [s for s in pending if s.log_id in held]
        # Waiting is worth it only if the other claim ends while there is still time for a call of our own.
        if pending and (deadline is None or held_until.timestamp() > deadline - channel.longest_call_seconds):
            later.add(pending, held_until.timestamp() - time.time() + 1)
            return
        if pending:
            time.sleep(HELD_POLL_SECONDS)


def _send_checked(db: Database, channel: Channel, claimed: list[SendRecordIn], token: str, policy: SendPolicy,
                  deadline: float | None, later: _Later) -> None:
    """The claimed sends, their campaign's state and their recipient's consent checked again before every
    `checked_every` of them, each campaign's rate kept."""
    stop_at = time.time() + channel.longest_call_seconds
    # Within the claim's time, whatever time each call would allow itself.
    call_until = stop_at if deadline is None else min(deadline, stop_at)
    for start in range(0, len(claimed), channel.checked_every):
        chunk = claimed[start:start + channel.checked_every]
        if start and time.time() >= stop_at:
            _give_back(db, claimed[start:], token, policy, 0, later)  # past the claim's time: not reached
            return
        by_rate: dict[tuple[ObjectId, int] | None, list[SendRecordIn]] = defaultdict(list)
        links: dict[str, list[str]] = {}
        for send, campaign in _may_be_sent(db, chunk, token, policy, later):
            rate = campaign.get("rate_per_minute")
            by_rate[(campaign["_id"], rate) if rate else None].append(send)
            links[send.log_id] = campaign.get("links") or []
        if by_rate.get(None):
            _call_channel(db, channel, by_rate.pop(None), token, policy, call_until, later, links)
        for (campaign_id, rate), sends in by_rate.items():
            _call_at_rate(db, channel, sends, campaign_rate(db, campaign_id, rate), rate, token, policy, call_until,
                          later, links)


def _call_at_rate(db: Database, channel: Channel, sends: list[SendRecordIn], limiter: SharedRateLimiter, rate: int,
                  token: str, policy: SendPolicy, until: float, later: _Later, links: dict[str, list[str]]) -> None:
    """A campaign's sends at its own rate: at most a second of its turns a call, each call made once its last turn
    has come, its campaign's state and its recipients' consent checked again then; what the claim's time cannot
    reach is given back for when turns come again."""
    step = max(1, rate // 60)
    for start in range(0, len(sends), step):
        chunk = sends[start:start + step]
        if not limiter.wait(len(chunk), until=until - channel.attempt_seconds):
            # Back when the turns taken by then have passed: no sooner (they are others'), no later (idle turns).
            _give_back(db, sends[start:], token, policy, max(1.0, limiter.free_at() - time.time()), later)
            return
        # After the wait for the turn: a pause or cancel that came meanwhile holds these back.
        chunk = [send for send, _ in _may_be_sent(db, chunk, token, policy, later)]
        if chunk:
            _call_channel(db, channel, chunk, token, policy, until, later, links)


# A campaign's rate, kept a little below what it names: a call made a moment after its turn, or a call of a second's
# turns made at the last of them, then still leaves at most rate_per_minute messages in any minute.
RATE_MARGIN = 0.97
_campaign_rates: LRUCache = LRUCache(maxsize=256)
_rates_lock = threading.Lock()


def campaign_rate(db: Database, campaign_id: ObjectId, rate_per_minute: int) -> SharedRateLimiter:
    """The turns of a campaign's rate, shared by every sender of it (one limiter a container)."""
    key = (db.name, campaign_id, rate_per_minute)
    with _rates_lock:
        limiter = _campaign_rates.get(key)
        if limiter is None:
            limiter = _campaign_rates[key] = SharedRateLimiter(
                db[CHANNEL_RATES], f"campaign:{campaign_id}", rate_per_minute / 60 * RATE_MARGIN)
    return limiter


def _may_be_sent(db: Database, sends: list[SendRecordIn], token: str, policy: SendPolicy,
                 later: _Later) -> list[tuple[SendRecordIn, dict[str, Any]]]:
    """Claimed sends that may be handed over now, with their campaign. The others, under the claim: a cancelled
    campaign's are SKIPPED cancelled; a paused campaign's, or those outside their send window, are parked to wait;
    a recipient who may no longer be messaged is SKIPPED with the reason, one past the frequency cap too."""
    if not sends:
        return []
    now = utcnow()
    ids = [ObjectId(s.log_id) for s in sends]
    held, campaigns, logs = lifecycle.not_now(db, ids, now)
    if held:
        _hold(db, held, sends, token, policy, later)
    ids = [i for i in ids if i not in held]
    reasons = reasons_not_to_send(db, ids) if ids else {}
    if policy.frequency_cap and ids:
        counted = {i: logs[i] for i in ids if i not in reasons
                   and not campaigns[logs[i][1]].get("ignore_frequency_cap")}
        reasons.update({i: lifecycle.FREQUENCY_CAP for i in frequency_cap.capped(db, counted, policy.frequency_cap,
                                                                                   now)})
    if reasons:
        # An erased person's log written after their erasure blanked the others (a fan-out racing it) is blanked now.
        record_outcomes(db, [Outcome(log_id, SKIPPED, reason=reason, also=BLANK_LOG if reason == ERASED else None)
                             for log_id, reason in reasons.items()], only_if={"claim": token},
                        roll_up_every=policy.roll_up_every)
    return [(s, campaigns[logs[ObjectId(s.log_id)][1]]) for s in sends
            if ObjectId(s.log_id) not in held and ObjectId(s.log_id) not in reasons]


def _hold(db: Database, held: dict[ObjectId, lifecycle.NotNow], sends: list[SendRecordIn], token: str,
          policy: SendPolicy, later: _Later) -> None:
    cancelled = [i for i, why in held.items() if why.cancelled]
    if cancelled:
        record_outcomes(db, [Outcome(i, SKIPPED, reason=lifecycle.SKIPPED_CANCELLED) for i in cancelled],
                        only_if={"claim": token}, roll_up_every=policy.roll_up_every)
    by_until: dict[Any, list[ObjectId]] = defaultdict(list)
    for log_id, why in held.items():
        if not why.cancelled:
            by_until[why.until].append(log_id)
    for until, log_ids in by_until.items():
        lifecycle.park(db, log_ids, token, until)
    paused = by_until.get(None)
    if paused:
        # A resume or a cancel between the check and the park has swept the parked logs already: these go now, or
        # are skipped.
        resumed = lifecycle.after_parking(db, paused, utcnow() + policy.send, policy.roll_up_every)
        by_id = {s.log_id: s for s in sends}
        later.add([by_id[str(log["_id"])] for log in resumed], 0)


def _call_channel(db: Database, channel: Channel, sends: list[SendRecordIn], token: str, policy: SendPolicy,
                  deadline: float | None, later: _Later, links: dict[str, list[str]]) -> None:
    """One channel call for claimed logs, its outcome recorded under the claim; what it did not send is given back.

    A channel that would deliver a repeated message twice has each log marked sent, unconfirmed, just before its
    message is handed over. A sender that dies after that leaves the mark, which no later claim takes, so it is
    never sent again (its events, found by the log id, or the reconciler settle it): at most once, never twice.
    A mark whose message was not handed over after all is taken off again. Links are tracked in what the channel is
    handed (links: each log's campaign's), never in what is stored or queued again."""
    messages = [s.model_dump(exclude_none=True) for s in sends]
    if policy.links is not None:
        messages = [policy.links.tracked(m, links.get(m["log_id"], ())) for m in messages]
    marked: set[str] = set()
    try:
        if channel.repeats_safely:
            outcomes = channel.send(messages, deadline)
        else:
            outcomes = channel.send(messages, deadline, lambda log_id: _mark(db, log_id, token, policy, marked))
    except ChannelUnavailable as exc:  # the channel took none of them
        outcomes = {s.log_id: Deferred(attempted=not exc.waiting, waiting=exc.waiting) for s in sends}
    # Any other error keeps every mark: the channel may have taken those messages.
    final = {log_id for log_id, result in outcomes.items() if isinstance(result, (Accepted, Rejected))}
    _unmark(db, marked - final, token, policy)
    now = utcnow()
    accepted = {ObjectId(log_id): result.vendor_message_id for log_id, result in outcomes.items()
                if isinstance(result, Accepted)}
    for run in in_chunks(list(accepted)):
        # One update for the call's accepted logs, each given its own message id; a log can only hold its own mark.
        db[LOGS].update_many(
            {"_id": {"$in": run}, "status": QUEUED, "claim": token,
             "vendor_message_id": {"$in": [None, *(UNCONFIRMED + str(log_id) for log_id in run)]}},
            [{"$set": {"vendor_message_id": per_document(run, [accepted[log_id] for log_id in run]),
                       # No receipt by then, the reconciler asks the vendor.
                       **literals({"sent_at": now, "updated_at": now, "due_at": now + policy.receipt})}},
             {"$unset": ["claimed_until"]}])
    rejected = [Outcome(ObjectId(log_id), FAILED, reason=result.reason, also={"vendor_message_id": None})
                for log_id, result in outcomes.items() if isinstance(result, Rejected)]
    if rejected:
        # Under this sender's claim: one whose claim lapsed must not fail a log another sender has since sent.
        record_outcomes(db, rejected, only_if={"claim": token}, roll_up_every=policy.roll_up_every)
    by_id = {s.log_id: s for s in sends}
    deferred = {log_id: result for log_id, result in outcomes.items() if isinstance(result, Deferred)}
    for log_id in _count_failures(db, [log_id for log_id, d in deferred.items() if d.attempted], token, policy):
        del deferred[log_id]
    for waiting in (True, False):
        _give_back(db, [by_id[i] for i, d in deferred.items() if d.waiting is waiting], token, policy,
                   WAIT_SECONDS if waiting else RETRY_SECONDS, later)
    # A log the channel's answer did not mention was not reached: its send is given back at once.
    _give_back(db, [s for s in sends if s.log_id not in outcomes], token, policy, 0, later)


def _count_failures(db: Database, log_ids: list[str], token: str, policy: SendPolicy) -> list[str]:
    """One attempt more for each message the channel failed; FAILED send_failed at the policy's limit (those ids)."""
    if not log_ids:
        return []
    ids = [ObjectId(i) for i in log_ids]
    db[LOGS].update_many({"_id": {"$in": ids}, "claim": token}, {"$inc": {"send_attempts": 1}})
    spent = [d["_id"] for d in db[LOGS].find({"_id": {"$in": ids}, "claim": token,
                                              "send_attempts": {"$gte": policy.max_attempts}}, {"_id": 1})]
    if spent:
        record_outcomes(db, [Outcome(log_id, FAILED, reason="send_failed") for log_id in spent],
                        only_if={"claim": token, "vendor_message_id": None}, roll_up_every=policy.roll_up_every)
    return [str(log_id) for log_id in spent]


def _give_back(db: Database, sends: list[SendRecordIn], token: str, policy: SendPolicy, delay_seconds: float,
               later: _Later) -> None:
    """Claimed sends this sender did not make: released, and queued again after delay_seconds (a log failed for good
    meanwhile is dropped by the next sender's claim)."""
    if not sends:
        return
    db[LOGS].update_many(
        {"_id": {"$in": [ObjectId(s.log_id) for s in sends]}, "claim": token, "status": QUEUED,
         "vendor_message_id": None},
        # The claim ended with this sender alive: it does not count toward MAX_CLAIMS (senders that died).
        {"$unset": {"claimed_until": ""}, "$inc": {"claims": -1},
         "$set": {"due_at": utcnow() + policy.send + timedelta(seconds=delay_seconds)}})
    later.add(sends, delay_seconds)


def _mark(db: Database, log_id: str, token: str, policy: SendPolicy, marked: set[str]) -> bool:
    """Marks a log sent, unconfirmed, while this sender's claim on it lasts (and its person is not erased); whether
    it may be handed over. Each attempt of the same message finds its own mark."""
    now, mark = utcnow(), UNCONFIRMED + log_id
    if not db[LOGS].update_one(
            {"_id": ObjectId(log_id), "status": QUEUED, "claim": token, "claimed_until": {"$gte": now},
             "erased": {"$ne": True}, "vendor_message_id": {"$in": [None, mark]}},
            {"$set": {"vendor_message_id": mark, "sent_at": now, "due_at": now + policy.receipt}}).matched_count:
        return False
    marked.add(log_id)
    return True


def _unmark(db: Database, log_ids: set[str], token: str, policy: SendPolicy) -> None:
    """Marked logs whose message was not handed over after all: unsent again, their message comes back for them."""
    if log_ids:
        db[LOGS].update_many(
            {"_id": {"$in": [ObjectId(i) for i in log_ids]}, "claim": token,
             "vendor_message_id": {"$in": [UNCONFIRMED + i for i in log_ids]}},
            {"$set": {"vendor_message_id": None, "sent_at": None, "due_at": utcnow() + policy.send}})


def _claim(db: Database, log_ids: list[ObjectId], deadline: float | None, call: timedelta) -> tuple[str, set[str]]:
    """Only QUEUED, not yet sent logs that no live sender holds are claimed; returns the claim and the claimed ids.
    A claim is no attempt (the channel was not asked yet); `claims` counts the claims not given back (a give-back
    takes its count off again), so that the reconciler gives up on a log whose senders keep dying before they can
    say what became of it."""
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
        {"$set": {"claimed_until": until, "claim": token, "due_at": until}, "$inc": {"claims": 1},
         "$unset": {"parked": ""}})
    return token, {str(d["_id"]) for d in db[LOGS].find({"_id": {"$in": log_ids}, "claim": token}, {"_id": 1})}


def _held_by_others(db: Database, log_ids: list[ObjectId]) -> tuple[set[str], datetime]:
    """Of logs this sender could not claim, those another live sender holds (their message is not done yet), and
    when the last of those claims ends."""
    # Marked sent, unconfirmed, under a live claim is held too: its sender may still find it was not handed over.
    held = list(db[LOGS].find({"_id": {"$in": log_ids}, "status": QUEUED, "claimed_until": {"$gte": utcnow()}},
                              {"claimed_until": 1})) if log_ids else []
    return {str(d["_id"]) for d in held}, max((d["claimed_until"] for d in held), default=utcnow())
