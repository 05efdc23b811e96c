"""Opaque cursors for newest-first lists keyed on `_id`."""
from __future__ import annotations

import base64
from typing import Any

from bson import ObjectId

from crm.errors import InvalidInput

MAX_LIMIT = 200
DEFAULT_LIMIT = 50


def encode_cursor(last_id: ObjectId) -> str:
    return base64.urlsafe_b64encode(last_id.binary).decode().rstrip("=")


def decode_cursor(cursor: str) -> ObjectId:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return ObjectId(raw)
    except (ValueError, TypeError) as exc:
        raise InvalidInput.for_field(("query", "cursor"), "not a cursor this API issued") from exc


def newest_first_page(collection, queries: list[dict[str, Any]], limit: int, cursor: str | None,
                      projection: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """One page sorted by `_id` descending, plus the cursor of the next page (None on the last).

    `queries` are alternatives (a document matching any of them is listed). Each runs as its own
    indexed query and the pages are merged, because not every server turns `$or` into index scans.
    """
    bound = {"_id": {"$lt": decode_cursor(cursor)}} if cursor else None
    merged: dict[ObjectId, dict[str, Any]] = {}
    for query in queries:
        if bound:
            query = {"$and": [query, bound]} if query else bound
        for doc in collection.find(query, projection).sort("_id", -1).limit(limit + 1):
            merged[doc["_id"]] = doc
    docs = sorted(merged.values(), key=lambda d: d["_id"], reverse=True)
    if len(docs) > limit:
        return docs[:limit], encode_cursor(docs[limit - 1]["_id"])
    return docs, None
