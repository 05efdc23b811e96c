"""What a prompt may name, read from the brand's registries: attribute keys and their known values, tags, products
(SKU → name) and campaigns by name, each read bounded; and the date calendar phrases count from."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timezone

from pymongo.database import Database

from crm.db import ATTRIBUTE_REGISTRY, CAMPAIGNS
from crm.services import attributes, products, tags
from crm.services.attributes import KnownAttributes

# The campaigns a prompt can name: the most recent this many (one read on the _id index).
MAX_CAMPAIGNS = 500


@dataclass(frozen=True)
class BrandRegistry(KnownAttributes):
    """KnownAttributes, and the tags, products and campaigns words may stand for."""

    tags: tuple[str, ...] = ()
    products: dict[str, str] = field(default_factory=dict)  # SKU → name
    campaigns: tuple[tuple[str, str], ...] = ()  # (id, name), newest first
    today: date | None = None  # None: the current UTC date

    def day(self) -> date:
        return self.today or datetime.now(timezone.utc).date()


def of(known: KnownAttributes | None) -> BrandRegistry:
    if isinstance(known, BrandRegistry):
        return known
    known = known or KnownAttributes()
    return BrandRegistry(types=known.types, values=known.values)


def load(db: Database) -> BrandRegistry:
    known = attributes.known(db[ATTRIBUTE_REGISTRY])
    named = tuple((str(doc["_id"]), doc["name"]) for doc in db[CAMPAIGNS].find({}, {"name": 1})
                  .sort("_id", -1).limit(MAX_CAMPAIGNS) if isinstance(doc.get("name"), str))
    return BrandRegistry(types=known.types, values=known.values, tags=tuple(tags.known(db[tags.TAG_REGISTRY])),
                         products=products.known(db[products.PRODUCT_REGISTRY]), campaigns=named)
