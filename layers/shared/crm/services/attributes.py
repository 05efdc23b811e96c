"""The attribute registry: each attribute key ingested so far, its type, how many customers have it and a few of
its values. Kept by the ingest consumer in bulk; read by the API to refuse a key sent with another type, by the
rule parser to check a rule fits its attribute, and by GET /api/customers/attributes."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from pymongo import UpdateOne
from pymongo.collection import Collection
from pymongo.errors import PyMongoError

from crm.db import bulk_upsert
from crm.errors import InvalidInput
from crm.models.common import utcnow
from crm.models.customers import AttributeInfo, CustomerIn, attribute_type
from crm.observability import logger

EXAMPLES = 5
# The string values kept per key for the rule parser ("in Mumbai"): categories such as a city or a plan have few;
# a free-text key fills the list, and values first seen after that are not kept.
KNOWN_VALUES = 100
KNOWN_VALUE_LENGTH = 60
# How often one key's count of customers is taken again (a count reads the key's index entries).
RECOUNT_EVERY = timedelta(minutes=1)
NEVER = datetime(1970, 1, 1, tzinfo=timezone.utc)
MAX_LISTED = 1000


@dataclass(frozen=True)
class KnownAttributes:
    """What the registry knows, for turning words into rules: each key's type and its known string values."""

    types: dict[str, str] = field(default_factory=dict)
    values: dict[str, list[str]] = field(default_factory=dict)


def known(registry: Collection) -> KnownAttributes:
    """Every registered key with its type and known values: one read of at most MAX_LISTED small documents."""
    types, values = {}, {}
    for doc in registry.find({}, {"type": 1, "values": 1}).limit(MAX_LISTED):
        types[doc["_id"]] = doc["type"]
        if doc.get("values"):
            values[doc["_id"]] = list(doc["values"])
    return KnownAttributes(types, values)


def types_of(registry: Collection, keys: set[str] | None = None) -> dict[str, str]:
    """Each registered key's type (of these keys only, when given): one indexed read."""
    if keys is not None:
        return {doc["_id"]: doc["type"] for doc in registry.find({"_id": {"$in": sorted(keys)}}, {"type": 1})}
    return {doc["_id"]: doc["type"] for doc in registry.find({}, {"type": 1}).limit(MAX_LISTED)}


def check_types(registry: Collection, customers: list[CustomerIn], batch: bool) -> None:
    """422 for a key sent with a type other than the one it has (in the registry, or earlier in this batch)."""
    keys = {key for c in customers for key, value in (c.attributes or {}).items() if value is not None}
    if not keys:
        return
    known = types_of(registry, keys)
    details = []
    for index, customer in enumerate(customers):
        for key, value in (customer.attributes or {}).items():
            if value is None:
                continue
            sent = attribute_type(value)
            known.setdefault(key, sent)
            if known[key] != sent:
                where = ["body", "customers", index, "attributes", key] if batch else ["body", "attributes", key]
                details.append({"loc": where, "msg": f"attribute {key} is a {known[key]}, not a {sent}"})
    if details:
        raise InvalidInput(f"Invalid input: {details[0]['msg']}", details[:50])


def register(registry: Collection, customers: Collection, ingested: list[CustomerIn]) -> None:
    """Adds this batch's keys, types and example values, then recounts the keys not counted for a minute."""
    seen: dict[str, tuple[str, list[Any], set[str]]] = {}
    for customer in ingested:
        for key, value in (customer.attributes or {}).items():
            if value is None:
                continue
            kind, examples, values = seen.setdefault(key, (attribute_type(value), [], set()))
            if attribute_type(value) != kind:
                continue
            if value not in examples and len(examples) < EXAMPLES:
                examples.append(value)
            if kind == "string" and len(value) <= KNOWN_VALUE_LENGTH and len(values) < KNOWN_VALUES:
                values.add(value)
    if not seen:
        return
    now = utcnow()
    ops = [UpdateOne({"_id": key}, [{"$set": {
        # The first type a key was stored with stays its type.
        "type": {"$ifNull": ["$type", kind]},
        "examples": _added_if_same_type(kind, "$examples", examples, EXAMPLES),
        "values": _added_if_same_type(kind, "$values", sorted(values), KNOWN_VALUES),
        "customers": {"$ifNull": ["$customers", 0]},
        "counted_at": {"$ifNull": ["$counted_at", NEVER]},
        "changed_at": now}}], upsert=True) for key, (kind, examples, values) in seen.items()]
    bulk_upsert(registry, ops)
    recount(registry, customers, set(seen), now)


def _added_if_same_type(kind: str, stored: str, added: list[Any], limit: int) -> dict:
    """The stored list with the values it lacks appended while there is room (an update pipeline expression): a
    full list keeps the values it has, so the words they stand for stay known."""
    have = {"$ifNull": [stored, []]}
    new = {"$filter": {"input": {"$literal": added}, "cond": {"$not": [{"$in": ["$$this", have]}]}}}
    return {"$cond": [{"$eq": [{"$ifNull": ["$type", kind]}, kind]},
                      {"$slice": [{"$concatArrays": [have, new]}, limit]},
                      have]}


def recount(registry: Collection, customers: Collection, keys: set[str], now: datetime) -> None:
    """Counts each key's customers, at most once a minute per key across consumers (a count is claimed first)."""
    for doc in registry.find({"_id": {"$in": sorted(keys)}, "counted_at": {"$lt": now - RECOUNT_EVERY}},
                             {"counted_at": 1}):
        claimed = registry.update_one({"_id": doc["_id"], "counted_at": doc["counted_at"]},
                                      {"$set": {"counted_at": now}})
        if not claimed.modified_count:
            continue
        try:
            count = customers.count_documents({f"attributes.{doc['_id']}": {"$exists": True}})
        except PyMongoError:
            # A count is a figure for people, not part of the ingest: one that cannot finish in this invocation is
            # left as it was (taken again in a minute), rather than failing a batch already written.
            logger.warning("attribute count not taken", extra={"key": doc["_id"]})
            continue
        registry.update_one({"_id": doc["_id"]}, {"$set": {"customers": count}})


def listed(registry: Collection) -> list[AttributeInfo]:
    return [AttributeInfo(key=d["_id"], type=d["type"], customers=d.get("customers", 0), examples=d.get("examples", []))
            for d in registry.find({}).sort("_id", 1).limit(MAX_LISTED)]
