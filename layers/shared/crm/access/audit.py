"""The audit trail: one entry per write through the API, written with the write (or failing the request with it)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, TypeVar

from bson import ObjectId
from pymongo.client_session import ClientSession
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from crm.access.principals import Principal
from crm.db import AUDIT
from crm.models.common import utcnow
from crm.pagination import newest_first_page

T = TypeVar("T")


@dataclass(frozen=True)
class Auditor:
    """Records the writes of one request, by one caller."""

    db: Database
    actor: Principal
    request_id: str

    def entry(self, action: str, target_type: str, target_id: str | None, **details: Any) -> dict[str, Any]:
        doc = {"_id": ObjectId(), "at": utcnow(), "actor": self.actor.actor(), "action": action,
               "target": {"type": target_type, "id": target_id}, "request_id": self.request_id}
        if details:
            doc["details"] = details
        return doc

    def record_in(self, session: ClientSession, action: str, target_type: str, target_id: str | None,
                  **details: Any) -> None:
        """The entry of a change made in this transaction."""
        self.db[AUDIT].insert_one(self.entry(action, target_type, target_id, **details), session=session)

    def write(self, action: str, target_type: str, target_id: str | None,
              change: Callable[[ClientSession], T], **details: Any) -> T:
        """The change and its entry in one transaction: both happen or neither does."""
        def both(session: ClientSession) -> T:
            result = change(session)
            self.record_in(session, action, target_type, target_id, **details)
            return result

        with self.db.client.start_session() as session:
            return session.with_transaction(both)

    def before(self, once: str, action: str, target_type: str, target_id: str | None,
               change: Callable[[], T], **details: Any) -> T:
        """For a change that cannot share a transaction (a queue): its entry first, so no change goes unrecorded,
        taken back if the change fails. `once` names the change: a retry under the same Idempotency-Key records
        it once. A function that dies between the two leaves the entry of a change that may not have happened
        (its retry with the key makes it happen); never a change with no entry."""
        try:
            entry_id = self.db[AUDIT].insert_one(
                {**self.entry(action, target_type, target_id, **details), "once": once}).inserted_id
        except DuplicateKeyError:
            entry_id = None  # an earlier try recorded it, and may have made the change: its entry stays
        try:
            return change()
        except BaseException:
            if entry_id is not None:
                self.db[AUDIT].delete_one({"_id": entry_id})
            raise


def list_page(db: Database, actor: str | None, action: str | None, after: datetime | None,
              before: datetime | None, limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first. `actor` is a person's e-mail or a caller's id."""
    query: dict[str, Any] = {}
    if action:
        query["action"] = action
    if after or before:
        # An entry's _id is made with its `at`, to the second: the _id bounds let the index read only the range.
        query["at"] = {**({"$gte": after} if after else {}), **({"$lte": before} if before else {})}
        query["_id"] = {**({"$gte": _id_at(after, -1)} if after else {}),
                        **({"$lt": _id_at(before, +1)} if before else {})}
    alternatives = [{**query, "actor.email": actor.lower()}, {**query, "actor.id": actor}] if actor else [query]
    docs, next_cursor = newest_first_page(db[AUDIT], alternatives, limit, cursor)
    return [to_entry(d) for d in docs], next_cursor


def _id_at(moment: datetime, shift_seconds: int) -> ObjectId:
    """The smallest id made this many seconds from the moment; an ObjectId's four-byte time holds only 1970 to
    2106 (and a datetime only years 1 to 9999, so the shift is not added to it)."""
    seconds = min(max(math.floor(moment.timestamp()) + shift_seconds, 0), 2**32 - 1)
    return ObjectId(seconds.to_bytes(4, "big") + bytes(8))


def to_entry(doc: dict[str, Any]) -> dict[str, Any]:
    entry = {"id": str(doc["_id"]), "at": doc["at"], "actor": doc["actor"], "action": doc["action"],
             "target": doc["target"], "request_id": doc["request_id"]}
    if "details" in doc:
        entry["details"] = doc["details"]
    return entry
