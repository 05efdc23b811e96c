"""Segments: saved rules with the audience they selected when saved, and live previews."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import PyMongoError

from crm import rules
from crm.access.audit import Auditor
from crm.db import ATTRIBUTE_REGISTRY, CUSTOMERS, SEGMENTS, find_by_id
from crm.errors import DependencyUnavailable
from crm.models.common import utcnow
from crm.models.segments import Preview, Segment
from crm.pagination import newest_first_page
from crm.services import attributes
from crm.services.customers import SHOWN_FIELDS, to_customer

SAMPLE_SIZE = 10


def parse_rules(db: Database, raw: Any, loc: rules.Loc = ("body", "rules")) -> rules.Node:
    """Rules sent now (or drafted from a prompt): each attribute they name must be known, with the type the rule
    compares."""
    return rules.parse(raw, loc, attributes.types_of(db[ATTRIBUTE_REGISTRY], rules.attribute_keys(raw)))


def audience_size(customers: Collection, node: rules.Node, now: datetime, time_limit_ms: int,
                  consent_mode: str = rules.OPT_OUT) -> int:
    try:
        return customers.count_documents(rules.to_filter(node, now, consent_mode), maxTimeMS=time_limit_ms)
    except PyMongoError as exc:
        if not exc.timeout:  # past maxTimeMS on the server, or past the request's deadline in the client
            raise
        raise DependencyUnavailable("Counting this audience took too long; narrow the rules") from exc


def preview(customers: Collection, node: rules.Node, time_limit_ms: int, consent_mode: str = rules.OPT_OUT
            ) -> Preview:
    now = utcnow()
    # Unsorted on purpose: any ten matches will do, and sorting would read the whole audience.
    sample = customers.find(rules.to_filter(node, now, consent_mode), SHOWN_FIELDS).limit(SAMPLE_SIZE)
    return Preview(audience_size=audience_size(customers, node, now, time_limit_ms, consent_mode),
                   sample=[to_customer(d, consent_mode) for d in sample])


def create(audit: Auditor, name: str, description: str | None, node: rules.Node, time_limit_ms: int,
           consent_mode: str = rules.OPT_OUT) -> Segment:
    now = utcnow()
    size = audience_size(audit.db[CUSTOMERS], node, now, time_limit_ms, consent_mode)
    doc = {"_id": ObjectId(), "name": name, "description": description, "rules": node.to_json(),
           "created_by": audit.actor.email, "created_at": now, "audience_size": size}
    audit.write("segment.create", "segment", str(doc["_id"]),
                lambda session: audit.db[SEGMENTS].insert_one(doc, session=session))
    return to_segment(doc)


def get(segments: Collection, segment_id: str) -> dict[str, Any]:
    return find_by_id(segments, segment_id, "segment")


def list_page(segments: Collection, limit: int, cursor: str | None) -> tuple[list[Segment], str | None]:
    docs, next_cursor = newest_first_page(segments, [{}], limit, cursor)
    return [to_segment(d) for d in docs], next_cursor


def to_segment(doc: dict[str, Any]) -> Segment:
    return Segment(id=str(doc["_id"]), name=doc["name"], description=doc.get("description"), rules=doc["rules"],
                   created_by=doc["created_by"], created_at=doc["created_at"], audience_size=doc["audience_size"])
