"""The send consumer's work: one vendor call per hundred queued logs, never a second send for a log."""
from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from bson import ObjectId
from pydantic import ValidationError
from pymongo import UpdateOne
from pymongo.database import Database

from crm.db import LOGS
from crm.errors import InvalidInput, RetryableRecordError
from crm.models.campaigns import FAILED, QUEUED, VendorSendIn
from crm.models.common import first_problem, utcnow
from crm.services.delivery import Outcome, record_outcomes
from crm.vendor_client import BATCH, Accepted, VendorClient, VendorUnavailable

QUEUE_KIND = "sends"
# Long enough for one vendor call with all its retries; a sender that died frees its logs after this.
CLAIM = timedelta(seconds=90)


def send_records(db: Database, vendor: VendorClient, records: list[Any]) -> None:
    """Sends each record's message unless its log was already sent; raises after the batch if any must retry."""
    valid: list[VendorSendIn] = []
    invalid = []
    for index, record in enumerate(records):
        try:
            valid.append(VendorSendIn.model_validate(record if isinstance(record, dict) else {}))
        except ValidationError as exc:
            invalid.append({"loc": ["records", index], "msg": first_problem(exc)})
    retry: list[str] = []
    for start in range(0, len(valid), BATCH):
        retry += _send_batch(db, vendor, valid[start:start + BATCH])
    if invalid:
        raise InvalidInput(f"{len(invalid)} of {len(records)} send records are invalid", invalid)
    if retry:
        raise RetryableRecordError(f"the vendor is unavailable for {len(retry)} message(s)",
                                   [{"loc": ["log_id"], "msg": log_id} for log_id in retry[:20]])


def _send_batch(db: Database, vendor: VendorClient, batch: list[VendorSendIn]) -> list[str]:
    """The log ids to try again later."""
    claimed = _claim(db, [ObjectId(s.log_id) for s in batch])
    sends = [s for s in batch if s.log_id in claimed]
    if not sends:
        return []
    try:
        outcomes = vendor.send([{"log_id": s.log_id, "to": s.to.model_dump(), "message": s.message} for s in sends])
    except VendorUnavailable:
        db[LOGS].update_many({"_id": {"$in": [ObjectId(s.log_id) for s in sends]}}, {"$unset": {"claimed_until": ""}})
        return [s.log_id for s in sends]
    now = utcnow()
    accepted = [UpdateOne({"_id": ObjectId(log_id), "vendor_message_id": None},
                          {"$set": {"vendor_message_id": result.vendor_message_id, "sent_at": now, "updated_at": now},
                           "$unset": {"claimed_until": ""}})
                for log_id, result in outcomes.items() if isinstance(result, Accepted)]
    if accepted:
        db[LOGS].bulk_write(accepted, ordered=False)
    rejected = [Outcome(ObjectId(log_id), FAILED, reason=result.reason)
                for log_id, result in outcomes.items() if not isinstance(result, Accepted)]
    if rejected:
        record_outcomes(db, rejected)
    return []


def _claim(db: Database, log_ids: list[ObjectId]) -> set[str]:
    """Only QUEUED, not yet sent logs that no live sender holds are claimed; returns the claimed ids."""
    now, token = utcnow(), secrets.token_hex(8)
    # Unclaimed or expired, said without a top-level $or so that every server reads the logs by _id.
    db[LOGS].update_many(
        {"_id": {"$in": log_ids}, "status": QUEUED, "vendor_message_id": None,
         "claimed_until": {"$not": {"$gte": now}}},
        {"$set": {"claimed_until": now + CLAIM, "claim": token}})
    return {str(d["_id"]) for d in db[LOGS].find({"_id": {"$in": log_ids}, "claim": token}, {"_id": 1})}
