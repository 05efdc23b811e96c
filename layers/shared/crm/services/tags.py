"""The tag registry: every tag ingested so far, so that a prompt can use a tag as a word ("vip customers in Delhi"
is the tag vip, not a description to drop). Kept by the customer consumer: a batch writes only the tags it is the
first to bring."""
from __future__ import annotations

from pymongo import UpdateOne
from pymongo.collection import Collection

from crm.db import bulk_upsert, in_chunks
from crm.models.common import utcnow
from crm.models.customers import CustomerIn

TAG_REGISTRY = "tag_registry"
# What the rules parser and the model's context read: the first this many tags (in order), one small read.
MAX_LISTED = 1000


def register(registry: Collection, ingested: list[CustomerIn]) -> None:
    brought = sorted({tag for customer in ingested for tag in (customer.tags or [])})
    if not brought:
        return
    stored = {doc["_id"] for run in in_chunks(brought) for doc in registry.find({"_id": {"$in": run}}, {"_id": 1})}
    now = utcnow()
    ops = [UpdateOne({"_id": tag}, {"$setOnInsert": {"first_seen": now}}, upsert=True)
           for tag in brought if tag not in stored]
    if ops:
        bulk_upsert(registry, ops)


def known(registry: Collection) -> list[str]:
    return [doc["_id"] for doc in registry.find({}, {"_id": 1}).sort("_id", 1).limit(MAX_LISTED)]
