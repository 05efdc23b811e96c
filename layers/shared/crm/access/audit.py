"""The audit trail: one entry per write through the API, written with the write (or failing the request with it)."""
from __future__ import annotations

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

    def write(self, action: str, target_type: str, target_id: str | None,
              change: Callable[[ClientSession], T], **details: Any) -> T:
        """The change and its entry in one transaction: both happen or neither does."""
        def both(session: ClientSession) -> T:
            result = change(session)
            self.db[AUDIT].insert_one(self.entry(action, target_type, target_id, **details), session=session)
            return result

        with self.db.client.start_session() as session:
            return session.with_transaction(both)

    def once(self, once: str, action: str, target_type: str, target_id: str | None, **details: Any) -> None:
        """After a change that cannot share a transaction (a queue, or work an Idempotency-Key may repeat): `once`
        names the change, so a retry that does it again records it once. A failure here fails the request."""
        try:
            self.db[AUDIT].insert_one({**self.entry(action, target_type, target_id, **details), "once": once})
        except DuplicateKeyError:
            pass


def list_page(db: Database, actor: str | None, action: str | None, after: datetime | None,
              before: datetime | None, limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first. `actor` is a person's e-mail or a caller's id."""
    query: dict[str, Any] = {}
    if action:
        query["action"] = action
    if after or before:
        query["at"] = {**({"$gte": after} if after else {}), **({"$lte": before} if before else {})}
    alternatives = [{**query, "actor.email": actor.lower()}, {**query, "actor.id": actor}] if actor else [query]
    docs, next_cursor = newest_first_page(db[AUDIT], alternatives, limit, cursor)
    return [to_entry(d) for d in docs], next_cursor


def to_entry(doc: dict[str, Any]) -> dict[str, Any]:
    entry = {"id": str(doc["_id"]), "at": doc["at"], "actor": doc["actor"], "action": doc["action"],
             "target": doc["target"], "request_id": doc["request_id"]}
    if "details" in doc:
        entry["details"] = doc["details"]
    return entry
