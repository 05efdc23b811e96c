"""Customers: enqueue on ingest, upsert by e-mail in the consumer, list with indexed filters."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from pymongo import UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database

from crm import rules
from crm.consent import suppressions
from crm.db import ATTRIBUTE_REGISTRY, CUSTOMERS, SUPPRESSIONS, bulk_upsert, in_chunks
from crm.errors import InvalidInput
from crm.models.common import first_problem, to_iso, utcnow
from crm.models.customers import (
    MAX_BATCH,
    Customer,
    CustomerIn,
    attribute_type,
    ingest_version,
    versioned_write,
)
from crm.pagination import newest_first_page
from crm.rules import OPT_OUT
from crm.services import tags
from crm.services.attributes import register

QUEUE_KIND = "customers"


def queue_records(customers: list[CustomerIn]) -> list[dict[str, Any]]:
    """What the consumer gets: the fields the client gave, when the API accepted them, and their place in the
    request (a later entry for the same e-mail wins over an earlier one)."""
    accepted_at = to_iso(utcnow())
    return [{**c.model_dump(mode="json", exclude_unset=True), "accepted_at": accepted_at, "accepted_seq": i}
            for i, c in enumerate(customers)]


def upsert_customers(db: Database, records: list[Any]) -> None:
    """Applies every valid record and registers its attributes, then raises if any record was invalid (so the
    message is retried)."""
    customers = db[CUSTOMERS]
    valid, invalid = [], []
    for index, record in enumerate(records):
        try:
            valid.append(_parse_record(record))
        except (ValidationError, TypeError, ValueError) as exc:
            invalid.append((index, exc))
    applied = _upsert_unless_erased(db, valid) if valid else []
    if applied:
        register(db[ATTRIBUTE_REGISTRY], customers, applied)
        tags.register(db[tags.TAG_REGISTRY], applied)
    if invalid:
        raise InvalidInput(f"{len(invalid)} of {len(records)} customer records are invalid",
                           [{"loc": ["records", i], "msg": first_problem(exc)} for i, exc in invalid])


def _upsert_unless_erased(db: Database, valid: list[tuple[CustomerIn, datetime, int]]) -> list[CustomerIn]:
    """Writes the records but those the API accepted before their person was erased (a late or redelivered message
    brings no one back); the customers it wrote.

    An erasure may commit between the check and the write. A customer that existed when the write was prepared is
    only updated, never inserted: if the erasure deleted it meanwhile, the update matches nothing. Only an address
    that had no customer yet is upserted; for it to be erased meanwhile, another consumer must have inserted it and
    an admin erased it in between, and the check after the write takes out what such an upsert brought back (before
    any message can go to it: the send step checks the suppression list). No transaction: on the local server, one
    of a thousand writes holds every other transaction up."""
    erased = suppressions.erased_at(db[SUPPRESSIONS], {customer.email for customer, _, _ in valid})
    kept = [(c, at, v) for c, at, v in valid if not _erased_since(c.email, at, erased)]
    if kept:
        known = {d["email"] for run in in_chunks(sorted({c.email for c, _, _ in kept}))
                 for d in db[CUSTOMERS].find({"email": {"$in": run}}, {"email": 1})}
        bulk_upsert(db[CUSTOMERS], [_upsert_op(c, at, v, may_insert=c.email not in known) for c, at, v in kept])
        new = {c.email for c, _, _ in kept} - known
        erased.update(suppressions.erased_at(db[SUPPRESSIONS], new))
        kept = [(c, at, v) for c, at, v in kept if not _erased_since(c.email, at, erased)]
    # Also when the first delivery of this message died between its upsert and the check after it.
    _forget_brought_back(db[CUSTOMERS], erased)
    return [customer for customer, _, _ in kept]


def _erased_since(email: str, accepted_at: datetime, erased: dict[str, datetime]) -> bool:
    return email in erased and accepted_at <= erased[email]


def _forget_brought_back(customers: Collection, erased: dict[str, datetime]) -> None:
    """Deletes the customers of erased addresses made by records accepted before the erasure: only an older record
    racing the erasure makes one (a customer imported after the erasure was made after it)."""
    if erased:
        customers.delete_many({"$or": [{"email": email, "created_at": {"$lte": at}} for email, at in erased.items()]})


def _parse_record(record: Any) -> tuple[CustomerIn, datetime, int]:
    if not isinstance(record, dict):
        raise TypeError("record is not an object")
    fields = dict(record)
    accepted_at = datetime.fromisoformat(fields.pop("accepted_at"))
    seq = fields.pop("accepted_seq", 0)
    if not isinstance(seq, int) or not 0 <= seq < MAX_BATCH:
        raise ValueError("accepted_seq is not a place in a batch")
    return CustomerIn.model_validate(fields), accepted_at, ingest_version(accepted_at, seq)


# Where each field an ingest may carry is stored; spend and visits given at ingest are only the ingested part.
STORED_AS = {"name": "name", "phone": "phone", "spend": "ingested.spend", "visits": "ingested.visits",
             "tags": "tags", "email_consent": "email_consent"}


def stored_attribute(value: Any) -> Any:
    """An attribute as stored: a time as a date (so rules compare instants), anything else as given."""
    if attribute_type(value) == "time" and isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value


def _upsert_op(customer: CustomerIn, accepted_at: datetime, version: int, may_insert: bool = True) -> UpdateOne:
    """One pipeline update: each given field replaces the stored one only if this ingest is newer than the one
    that wrote it; spend and visits are the ingested part plus what applied orders added; last_active only
    moves forward. It makes the customer only if `may_insert`."""
    # A null is a field not given: it neither blanks a known value nor stores a null spend or visit count.
    given = customer.model_dump(include=set(STORED_AS), exclude_unset=True, exclude_none=True)
    if "name" in given:
        given["name_key"] = customer.name.casefold()
    fields: dict[str, Any] = {"email": {"$literal": customer.email}, "phone": {"$ifNull": ["$phone", None]}}
    for field, value in given.items():
        clock = "name" if field == "name_key" else field
        stored = STORED_AS.get(field, field)
        # $literal: a value is data, even one that looks like "$a.field.path".
        fields.update(versioned_write(stored, clock, {"$literal": value}, version))
    # Attributes merge key by key, each with its own clock; a null removes the key.
    for key, value in (customer.attributes or {}).items():
        new = "$$REMOVE" if value is None else {"$literal": stored_attribute(value)}
        fields.update(versioned_write(f"attributes.{key}", f"attributes.{key}", new, version))
    fields.update({
        "created_at": {"$min": ["$created_at", accepted_at]},
        # A customer never active counts as last active at creation.
        "last_active": ({"$max": ["$last_active", customer.last_active]} if customer.last_active
                        else {"$ifNull": ["$last_active", accepted_at]}),
        "updated_at": utcnow(),
    })
    # A customer stored before totals were split (and not yet backfilled) keeps its total as the ingested part.
    totals = {field: {"$add": [
        {"$ifNull": [f"$ingested.{field}", {"$subtract": [{"$ifNull": [f"${field}", 0]},
                                                           {"$ifNull": [f"$from_orders.{field}", 0]}]}]},
        {"$ifNull": [f"$from_orders.{field}", 0]}]} for field in ("spend", "visits")}
    return UpdateOne({"email": customer.email}, [{"$set": fields}, {"$set": totals}], upsert=may_insert)


@dataclass(frozen=True)
class CustomerFilters:
    email: str | None = None
    q: str | None = None
    min_spend: float | None = None
    max_spend: float | None = None
    min_visits: int | None = None
    max_visits: int | None = None
    active_after: datetime | None = None
    active_before: datetime | None = None
    tag: str | None = None

    def to_queries(self) -> list[dict[str, Any]]:
        """Alternative queries, each answerable from one index: `q` matches a name or an e-mail prefix."""
        if not self.q:
            return [self._combine([])]
        prefix = self.q.casefold()
        return [self._combine([{"name_key": _prefix_range(prefix)}]), self._combine([{"email": _prefix_range(prefix)}])]

    def _combine(self, clauses: list[dict[str, Any]]) -> dict[str, Any]:
        if self.email:
            clauses.append({"email": self.email.lower()})
        if self.tag:
            clauses.append({"tags": self.tag})
        for field, low, high in (("spend", self.min_spend, self.max_spend),
                                 ("visits", self.min_visits, self.max_visits),
                                 ("last_active", self.active_after, self.active_before)):
            bounds = {op: v for op, v in (("$gte", low), ("$lte", high)) if v is not None}
            if bounds:
                clauses.append({field: bounds})
        if not clauses:
            return {}
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _prefix_range(prefix: str) -> dict[str, str]:
    """A prefix match as an index range; anchored regexes do not use the index on every server."""
    return {"$gte": prefix, "$lt": prefix + "\U0010ffff"}


# A customer as a reply shows it (`to_customer`): read without its behaviour roll-up (crm.rules.activity), up to two
# years of daily buckets and an entry per campaign that no reply shows.
SHOWN_FIELDS = {"activity": 0}


def list_customers(customers: Collection, filters: CustomerFilters, limit: int,
                   cursor: str | None, consent_mode: str = OPT_OUT) -> tuple[list[Customer], str | None]:
    docs, next_cursor = newest_first_page(customers, filters.to_queries(), limit, cursor, SHOWN_FIELDS)
    return [to_customer(doc, consent_mode) for doc in docs], next_cursor


def subscribed(doc: dict[str, Any], consent_mode: str) -> bool:
    return rules.subscribed(doc.get("email_consent"), consent_mode)


def to_customer(doc: dict[str, Any], consent_mode: str = OPT_OUT) -> Customer:
    return Customer(
        id=str(doc["_id"]), name=doc["name"], email=doc["email"], phone=doc.get("phone"),
        spend=doc.get("spend", 0.0), visits=doc.get("visits", 0),
        last_active=doc.get("last_active") or doc["created_at"],
        created_at=doc["created_at"], updated_at=doc["updated_at"],
        attributes={key: to_iso(value) if isinstance(value, datetime) else value
                    for key, value in (doc.get("attributes") or {}).items()},
        tags=doc.get("tags") or [], subscribed=subscribed(doc, consent_mode),
    )
