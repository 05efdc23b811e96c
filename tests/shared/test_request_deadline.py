"""Every query in a request has a time limit below the function's timeout: past it, 503 with Retry-After."""
from __future__ import annotations

import uuid

import pytest
from pymongo import MongoClient
from pymongo.errors import BulkWriteError

from crm.db import ensure_indexes, only_duplicates
from crm.models.common import utcnow
from tests.helpers import assert_error


@pytest.fixture(scope="module")
def mongo_server():
    """A server of this module's own: its slow queries, given up on by their clients, load no other test's server."""
    from offline import services

    server = services.MongoServer(":memory:")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def customers_database(mongo_server) -> str:
    """15,000 customers, written once for this module's tests: they only read them (a request cut off at its
    deadline writes nothing)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with MongoClient(mongo_server.uri) as client:
        database = client[name]
        ensure_indexes(database)
        now = utcnow()
        for start in range(0, 15_000, 1000):
            try:
                database.customers.insert_many([
                    {"name": f"C{i}", "name_key": f"c{i}", "email": f"c{i}@example.com", "spend": float(i),
                     "visits": i % 50, "last_active": now, "created_at": now, "updated_at": now}
                    for i in range(start, start + 1000)], ordered=False)
            except BulkWriteError as exc:
                # A slice retried after a slow answer on a loaded machine finds its customers there already.
                if not only_duplicates(exc):
                    raise
    yield name
    with MongoClient(mongo_server.uri, socketTimeoutMS=300_000) as patient:
        patient.drop_database(name)


@pytest.fixture
def stack_env(stack_env, customers_database):
    """Every test of this module on the one database of customers."""
    return {**stack_env, "MONGO_DB": customers_database}


@pytest.fixture
def many_customers(customers_database, mongo_server):
    yield
    # The server finishes a query its client gave up on, and holds the collection meanwhile: this waits for that,
    # so that the next test does not find the server busy.
    with MongoClient(mongo_server.uri, socketTimeoutMS=300_000) as patient:
        patient[customers_database].customers.find_one({}, {"_id": 1})


@pytest.mark.parametrize("request_", [
    ("POST", "/api/segments/preview", {"rules": {"field": "spend", "op": ">=", "value": 0}}),
    ("POST", "/api/segments", {"name": "All", "rules": {"field": "visits", "op": ">=", "value": 0}}),
    ("GET", "/api/customers?max_visits=10", None),
])
def test_a_query_past_the_functions_deadline_is_503_with_retry_after(api, many_customers, request_):
    method, target, body = request_
    # 1.6 s left: the request's queries get the 0.1 s that remain after the 1.5 s margin to answer.
    status, reply, headers = api.request(method, target, body, seconds_left=1.6)
    assert status == 503, reply
    assert_error(reply, "dependency_unavailable")
    assert int(headers["retry-after"]) > 0


def test_the_same_request_with_time_to_spare_answers(api, many_customers):
    status, reply, _ = api.post("/api/segments/preview", {"rules": {"field": "spend", "op": ">=", "value": 14_990}},
                                seconds_left=14)
    assert status == 200 and reply["audience_size"] == 10


def test_a_count_too_slow_for_a_request_is_503(api, many_customers, monkeypatch):
    """Here, not with the other segment tests: the count the client gives up on keeps the server busy a while."""
    from crm.config import get_settings

    monkeypatch.setenv("AUDIENCE_COUNT_TIME_LIMIT_MS", "1")
    get_settings.cache_clear()
    # Whether the server stops the count at 1 ms or the request's deadline (0.1 s here) stops it in the client.
    status, body, _ = api.post("/api/segments/preview", {"rules": {"field": "spend", "op": ">=", "value": 0}},
                               seconds_left=1.6)
    assert status == 503
    assert_error(body, "dependency_unavailable")
    assert "too long" in body["error"]["message"]


def test_a_database_that_cannot_be_reached_is_503_at_once_not_at_the_deadline(api, env, monkeypatch):
    import time

    from crm.config import get_settings

    monkeypatch.setenv("MONGO_URI", "mongodb://127.0.0.1:1/")
    get_settings.cache_clear()
    started = time.monotonic()
    status, reply, headers = api.get("/api/customers", seconds_left=60)
    assert status == 503 and headers["retry-after"]
    assert_error(reply, "dependency_unavailable")
    # MONGO_TIMEOUT_MS (1.5 s here) bounds it, not the 58.5 s the request's deadline would allow.
    assert time.monotonic() - started < 20
