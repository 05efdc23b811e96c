"""Orders: enqueue on ingest; in the consumer, record each order and apply it to its customer exactly once."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId
from pydantic import ValidationError
from pymongo import UpdateOne
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.database import Database

from crm.config import get_settings
from crm.db import CUSTOMERS, ORDERS
from crm.engagement import attribution
from crm.errors import InvalidInput, RetryableRecordError
from crm.models.common import first_problem, to_iso, utcnow
from crm.models.orders import Order, OrderIn
from crm.pagination import newest_first_page
from crm.rules import activity
from crm.services import products
from crm.services.delivery import roll_up_due

QUEUE_KIND = "orders"
# A customer's bought SKUs (rules' `skus`): the most recent this many distinct ones.
MAX_SKUS = 200


def queue_records(orders: list[OrderIn]) -> list[dict[str, Any]]:
    """What the consumer gets; the default date is fixed here, so every redelivery applies the same one."""
    now = utcnow()
    accepted_at = to_iso(now)
    return [{**o.model_dump(mode="json", exclude_unset=True), "date": to_iso(o.date or now),
             "accepted_at": accepted_at} for o in orders]


@dataclass(frozen=True)
class ResolvedOrder:
    order: OrderIn
    customer_id: ObjectId
    accepted_at: datetime


def apply_orders(db: Database, records: list[Any]) -> int:
    """Applies every order whose customer exists; returns how many were new.

    Raises afterwards if any record is invalid or waits for its customer, so the message is
    redelivered; orders already recorded are skipped then, which makes the retry safe.
    """
    parsed, invalid = _parse_records(records)
    resolved, missing = _resolve_customers(db[CUSTOMERS], parsed)
    applied = 0
    converted: list[ObjectId] = []  # the logs the orders were attributed to
    if resolved:
        with db.client.start_session() as session:
            applied = session.with_transaction(lambda s: _record_and_apply(db, resolved, s, converted))
        if converted:
            roll_up_due(db, converted, get_settings().roll_up_seconds)
    if invalid:
        raise InvalidInput(f"{len(invalid)} of {len(records)} order records are invalid", invalid)
    if missing:
        raise RetryableRecordError(f"{len(missing)} order(s) wait for a customer that does not exist yet",
                                   [{"loc": ["order_id"], "msg": order_id} for order_id in missing[:20]])
    return applied


def _parse_records(records: list[Any]) -> tuple[list[tuple[OrderIn, datetime]], list[dict[str, Any]]]:
    parsed, invalid = [], []
    for index, record in enumerate(records):
        try:
            if not isinstance(record, dict):
                raise TypeError("record is not an object")
            fields = dict(record)
            accepted_at = datetime.fromisoformat(fields.pop("accepted_at"))
            order = OrderIn.model_validate(fields)
            if order.date is None:
                raise ValueError("queued order has no date")
            parsed.append((order, accepted_at))
        except (ValidationError, TypeError, ValueError, KeyError) as exc:
            invalid.append({"loc": ["records", index], "msg": first_problem(exc)})
    return parsed, invalid


def _resolve_customers(customers: Collection, parsed: list[tuple[OrderIn, datetime]]
                       ) -> tuple[list[ResolvedOrder], list[str]]:
    emails = {o.customer_email for o, _ in parsed if o.customer_email}
    ids = {ObjectId(o.customer_id) for o, _ in parsed if o.customer_id}
    clauses = ([{"email": {"$in": sorted(emails)}}] if emails else []) + ([{"_id": {"$in": list(ids)}}] if ids else [])
    by_email: dict[str, ObjectId] = {}
    known_ids: set[ObjectId] = set()
    if clauses:
        for doc in customers.find({"$or": clauses} if len(clauses) > 1 else clauses[0], {"email": 1}):
            by_email[doc["email"]] = doc["_id"]
            known_ids.add(doc["_id"])
    resolved, missing = [], []
    for order, accepted_at in parsed:
        customer_id = by_email.get(order.customer_email) if order.customer_email else ObjectId(order.customer_id)
        if customer_id is None or customer_id not in known_ids:
            missing.append(order.order_id)
        else:
            resolved.append(ResolvedOrder(order, customer_id, accepted_at))
    return resolved, missing


def _record_and_apply(db: Database, resolved: list[ResolvedOrder], session: ClientSession,
                      converted: list[ObjectId]) -> int:
    """One transaction: the order documents, the customers' totals and the orders' attribution commit together or
    not at all; `converted` gets the logs the orders count on (emptied first: a transaction may start over)."""
    converted.clear()
    order_ids = [r.order.order_id for r in resolved]
    seen = {d["order_id"] for d in db[ORDERS].find({"order_id": {"$in": order_ids}}, {"order_id": 1}, session=session)}
    fresh: list[ResolvedOrder] = []
    for r in resolved:
        if r.order.order_id not in seen:
            seen.add(r.order.order_id)
            fresh.append(r)
    if not fresh:
        return 0
    attributed, deferred = attribution.attribute(db, [_purchase(r) for r in fresh], get_settings().attribution_days,
                                                 session)
    converted.extend(log_id for a in attributed.values() for log_id in (a.log_id, a.control_log_id) if log_id)
    db[ORDERS].insert_many([_order_doc(r, attributed.get(r.order.order_id), r.order.order_id in deferred)
                            for r in fresh], ordered=True, session=session)
    db[CUSTOMERS].bulk_write(_customer_updates(fresh), ordered=False, session=session)
    products.register(db[products.PRODUCT_REGISTRY], ((i.sku, i.name) for r in fresh for i in r.order.items))
    return len(fresh)


def _order_doc(r: ResolvedOrder, attributed: attribution.Attribution | None, deferred: bool) -> dict[str, Any]:
    return {
        "order_id": r.order.order_id,
        "customer_id": r.customer_id,
        "amount": r.order.amount,
        "items": [item.model_dump() for item in r.order.items],
        "date": r.order.date,
        "created_at": r.accepted_at,
        **({"attribution": attributed.to_doc()} if attributed else {}),
        **(attribution.DEFERRED if deferred else {}),
    }


def _purchase(r: ResolvedOrder) -> attribution.Purchase:
    return attribution.Purchase(r.order.order_id, r.customer_id, r.order.amount, r.order.date)


def _customer_updates(fresh: list[ResolvedOrder]) -> list[UpdateOne]:
    totals: dict[ObjectId, dict[str, Any]] = {}
    for r in fresh:
        total = totals.setdefault(r.customer_id, {"spend": 0.0, "visits": 0, "last": r.order.date, "skus": {},
                                                     "orders": []})
        total["spend"] += r.order.amount
        total["visits"] += 1
        total["last"] = max(total["last"], r.order.date)
        total["orders"].append((r.order.date, r.order.amount, [item.sku for item in r.order.items]))
        for item in r.order.items:
            total["skus"].pop(item.sku, None)
            total["skus"][item.sku] = True  # the latest order of a SKU places it last
    now = utcnow()
    return [UpdateOne({"_id": cid}, [{"$set": {
        **{field: {"$add": [{"$ifNull": [f"${field}", 0]}, t[key]]}
           for field, key in (("spend", "spend"), ("visits", "visits"), ("from_orders.spend", "spend"),
                              ("from_orders.visits", "visits"))},
        "last_active": {"$max": ["$last_active", t["last"]]},
        "skus": _bought(list(t["skus"])),
        activity.ORDERS: activity.orders_activity(t["orders"], now),
        "updated_at": now}}]) for cid, t in totals.items()]


def _bought(skus: list[str]) -> dict[str, Any]:
    """The customer's bought SKUs with these appended (moved to the end if there already), the most recent
    MAX_SKUS kept."""
    earlier = {"$filter": {"input": {"$ifNull": ["$skus", []]},
                           "cond": {"$not": [{"$in": ["$$this", {"$literal": skus}]}]}}}
    return {"$slice": [{"$concatArrays": [earlier, {"$literal": skus}]}, -MAX_SKUS]}


@dataclass(frozen=True)
class OrderFilters:
    customer_id: str | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None

    def to_query(self) -> dict[str, Any]:
        query: dict[str, Any] = {}
        if self.customer_id:
            query["customer_id"] = ObjectId(self.customer_id)
        bounds = {op: v for op, v in (("$gte", self.date_from), ("$lte", self.date_to)) if v is not None}
        if bounds:
            query["date"] = bounds
        return query


def list_orders(orders: Collection, filters: OrderFilters, limit: int, cursor: str | None
                ) -> tuple[list[Order], str | None]:
    docs, next_cursor = newest_first_page(orders, [filters.to_query()], limit, cursor)
    return [to_order(doc) for doc in docs], next_cursor


def to_order(doc: dict[str, Any]) -> Order:
    return Order(id=str(doc["_id"]), order_id=doc["order_id"], customer_id=str(doc["customer_id"]),
                 amount=doc["amount"], items=doc["items"], date=doc["date"], created_at=doc["created_at"])
