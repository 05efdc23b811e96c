"""The product registry: each SKU ordered so far and the name its latest order gave it, so that a prompt can name a
product ("bought masala chai"). Kept by the order consumer: a batch reads its SKUs' entries and writes only those
it does not know yet or knows by another name, so a best-seller's entry is not rewritten by every batch."""
from __future__ import annotations

from collections.abc import Iterable

from pymongo import UpdateOne
from pymongo.collection import Collection

from crm.db import bulk_upsert, in_chunks

PRODUCT_REGISTRY = "product_registry"
# What the rules parser and the model's context read: the first this many SKUs (in SKU order), one small read.
MAX_LISTED = 1000


def register(registry: Collection, items: Iterable[tuple[str, str]]) -> None:
    """Records (sku, name) pairs; of a SKU named twice in a batch, the last name counts."""
    named = {sku: name for sku, name in items}
    if not named:
        return
    stored = {doc["_id"]: doc.get("name") for run in in_chunks(sorted(named))
              for doc in registry.find({"_id": {"$in": run}}, {"name": 1})}
    ops = [UpdateOne({"_id": sku}, {"$set": {"name": name}}, upsert=True)
           for sku, name in named.items() if stored.get(sku) != name]
    if ops:
        bulk_upsert(registry, ops)


def known(registry: Collection) -> dict[str, str]:
    """SKU → product name, at most MAX_LISTED of them."""
    return {doc["_id"]: doc["name"] for doc in registry.find({}, {"name": 1}).sort("_id", 1).limit(MAX_LISTED)}
