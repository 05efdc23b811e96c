"""GET /api/customers: filters on indexed fields, newest first, cursor pagination."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pymongo import MongoClient

from crm.db import CUSTOMERS
from crm.rules.activity import daily_buckets
from crm.services.customers import CustomerFilters, list_customers, upsert_customers
from tests.helpers import FindReplies, assert_error, uses_index

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def _seed(db, count: int) -> None:
    """Customers through the consumer's own write path, oldest first."""
    for i in range(count):
        upsert_customers(db, [{
            "name": f"{'Zed' if i % 2 else 'Amy'} {i:03d}", "email": f"user{i:03d}@example.com", "spend": float(i * 10),
            "visits": i % 7, "last_active": (NOW - timedelta(days=i)).isoformat(),
            "accepted_at": (NOW - timedelta(days=365)).isoformat(),
        }])


def test_pagination_returns_every_row_exactly_once_newest_first(api, db):
    _seed(db, 57)
    seen, cursor, pages = [], None, 0
    while True:
        target = "/api/customers?limit=10" + (f"&cursor={cursor}" if cursor else "")
        status, page, _ = api.get(target)
        assert status == 200
        seen.extend(c["email"] for c in page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 6
    assert len(seen) == len(set(seen)) == 57
    assert seen == [f"user{i:03d}@example.com" for i in reversed(range(57))]


def test_default_limit_is_50(api, db):
    _seed(db, 51)
    _, page, _ = api.get("/api/customers")
    assert len(page["items"]) == 50 and page["next_cursor"]


@pytest.mark.parametrize("query, expected", [
    ("min_spend=100&max_spend=150", {10, 11, 12, 13, 14, 15}),
    ("min_visits=6", {6, 13}),
    ("max_visits=0&max_spend=100", {0, 7}),
    ("q=zed%2000", {1, 3, 5, 7, 9}),
    ("q=USER01", set(range(10, 16))),
    ("q=amy&limit=3", {14, 12, 10}),
    ("q=a", set(range(0, 16, 2))),
    ("email=USER003@example.com", {3}),
    ("active_after=2026-11-22T12:00:00Z", {0, 1, 2, 3}),
    ("active_before=2026-11-12T12:00:00%2B00:00&min_spend=130&max_spend=150", {13, 14, 15}),
])
def test_filters(api, db, query, expected):
    _seed(db, 16)
    status, page, _ = api.get(f"/api/customers?{query}" + ("" if "limit" in query else "&limit=200"))
    assert status == 200
    assert {int(c["email"][4:7]) for c in page["items"]} == expected


@pytest.mark.parametrize("filters", [
    CustomerFilters(min_spend=10), CustomerFilters(max_visits=3), CustomerFilters(email="a@example.com"),
    CustomerFilters(q="amy"), CustomerFilters(active_before=NOW),
])
def test_filters_use_indexes(api, db, filters):
    _seed(db, 3)
    for query in filters.to_queries():
        plan = db[CUSTOMERS].find(query).explain()["queryPlanner"]["winningPlan"]
        assert uses_index(plan), plan


@pytest.mark.parametrize("query, loc", [
    ("limit=0", ["query", "limit"]), ("limit=201", ["query", "limit"]), ("min_spend=-1", ["query", "min_spend"]),
    ("min_visits=x", ["query", "min_visits"]), ("active_after=yesterday", ["query", "active_after"]),
    ("cursor=!!!", ["query", "cursor"]), ("email=nope", ["query", "email"]),
])
def test_bad_query_is_422(api, query, loc):
    status, body, _ = api.get(f"/api/customers?{query}")
    assert status == 422
    assert_error(body, "validation_error", loc)



def test_a_page_of_customers_is_read_without_their_behaviour_roll_up(env, db):
    """Review finding: a page read every customer's whole activity (two years of daily buckets each) to show none."""
    _seed(db, 3)
    orders = [(NOW - timedelta(days=day), 100.0, ["SKU-1"]) for day in range(700)]
    db[CUSTOMERS].update_many({}, {"$set": {"activity.orders": daily_buckets(orders, NOW)}})
    listener = FindReplies()
    with MongoClient(env["MONGO_URI"], event_listeners=[listener], tz_aware=True) as client:
        customers, _ = list_customers(client[env["MONGO_DB"]][CUSTOMERS], CustomerFilters(), 10, None)
    assert len(customers) == 3 and len(listener.documents) == 3
    assert all("activity" not in document and document["email"] for document in listener.documents)
