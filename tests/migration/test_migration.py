"""Indexes are made by the deploy-time migration (a CloudFormation custom resource), never by a request."""
from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from crm.db import INDEXES, get_db
from offline.lambda_worker import LambdaContext
from tests.conftest import ROOT, load_function


class CloudFormation:
    """The pre-signed response URL CloudFormation waits on: records what the function PUTs there."""

    def __init__(self):
        self.responses: list[dict] = []
        self.content_types: list[str | None] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_PUT(self):  # noqa: N802 - the base class's name
                recorder.content_types.append(self.headers.get("Content-Type"))
                recorder.responses.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/response"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def event(self, request_type: str) -> dict:
        """The sample event of events/migration.json (what `sam local invoke` sends), answered here."""
        sample = json.loads((ROOT / "events" / "migration.json").read_text())
        return {**sample, "RequestType": request_type, "ResponseURL": self.url, "RequestId": str(uuid.uuid4())}


@pytest.fixture
def cloudformation():
    cfn = CloudFormation()
    yield cfn
    cfn.server.shutdown()


def _index_names(database) -> dict[str, set[str]]:
    return {name: {ix["name"] for ix in database[name].list_indexes()} - {"_id_"}
            for name in database.list_collection_names()}


def test_requests_create_no_index(api, env, consumers):
    database = get_db()
    try:
        api.post("/api/customers", {"name": "Ada", "email": "ada@example.com"})
        consumers.drain("CustomerIngestQueue")
        assert api.get("/api/customers")[0] == 200
        assert api.get("/api/campaigns")[0] == 200
        assert database.customers.count_documents({}) == 1
        assert all(not names for names in _index_names(database).values()), _index_names(database)
    finally:
        database.client.drop_database(env["MONGO_DB"])


def test_the_migration_creates_every_index_and_answers_cloudformation(env, cloudformation):
    database = get_db()
    try:
        migration = load_function("migration")
        for request_type in ("Create", "Update"):
            migration.handler(cloudformation.event(request_type), LambdaContext("MigrationFunction", 512, "r", 2e9))
        assert [r["Status"] for r in cloudformation.responses] == ["SUCCESS", "SUCCESS"]
        assert cloudformation.content_types == ["", ""], "the pre-signed URL takes no content type"
        created = _index_names(database)
        for collection, indexes in INDEXES.items():
            assert {ix.document["name"] for ix in indexes} <= created.get(collection, set()), collection
        job = database.migrations.find_one({"_id": "v3-activity-backfill"})
        assert job and not job["done"], "the v3 backfill is asked for (the reconciler does it once the deploy settled)"
    finally:
        database.client.drop_database(env["MONGO_DB"])


def test_a_failed_migration_tells_cloudformation(env, cloudformation, monkeypatch):
    from crm import migration

    def broken(_db):
        raise RuntimeError("mongodb://user:secret@host refused")

    monkeypatch.setattr(migration, "ensure_indexes", broken)
    migration.handler(cloudformation.event("Create"), None)
    [response] = cloudformation.responses
    assert response["Status"] == "FAILED" and "secret" not in json.dumps(response)
    migration.handler(cloudformation.event("Delete"), None)
    assert cloudformation.responses[-1]["Status"] == "SUCCESS", "a delete never blocks the stack's removal"


def test_data_from_before_v2_is_backfilled_once(env, db, api, consumers):
    from crm.migration import backfill_v2
    from crm.models.common import utcnow

    now = utcnow()
    # A customer as v1 stored it: 500 spent and 7 visits, of which one order of 40.
    customer_id = db.customers.insert_one({"name": "Ada", "name_key": "ada", "email": "ada@example.com", "phone": None,
                                           "spend": 500.0, "visits": 7, "last_active": now, "created_at": now,
                                           "updated_at": now}).inserted_id
    db.orders.insert_one({"order_id": "o-1", "customer_id": customer_id, "amount": 40.0, "items": [], "date": now,
                          "created_at": now})
    db.customers.insert_one({"name": "Bob", "name_key": "bob", "email": "bob@example.com", "phone": None,
                             "spend": 10.0, "visits": 1, "last_active": now, "created_at": now, "updated_at": now})
    campaign_id = db.campaigns.insert_one({"status": "SENDING", "fanout": {"cursor": None, "done": True}}).inserted_id
    log_id = db.communication_logs.insert_one({"campaign_id": campaign_id, "customer_id": customer_id,
                                               "status": "QUEUED"}).inserted_id
    backfill_v2(db)
    backfill_v2(db)  # a second deploy changes nothing
    ada = db.customers.find_one({"_id": customer_id})
    assert (ada["ingested"], ada["from_orders"]) == ({"spend": 460.0, "visits": 6}, {"spend": 40.0, "visits": 1})
    assert db.customers.find_one({"email": "bob@example.com"})["ingested"] == {"spend": 10.0, "visits": 1}
    assert db.campaigns.find_one({"_id": campaign_id})["fanout"]["updated_at"]
    assert db.communication_logs.find_one({"_id": log_id})["due_at"]

    api.post("/api/customers", {"name": "Ada L.", "email": "ada@example.com"})
    consumers.drain("CustomerIngestQueue")
    ada = db.customers.find_one({"_id": customer_id})
    assert (ada["name"], ada["spend"], ada["visits"]) == ("Ada L.", 500.0, 7), "a re-ingest erases nothing"


def test_a_customer_from_before_v2_re_ingested_before_the_backfill_keeps_its_totals(env, db, api, consumers):
    from crm.models.common import utcnow

    now = utcnow()
    db.customers.insert_one({"name": "Ada", "name_key": "ada", "email": "ada@example.com", "phone": None,
                             "spend": 500.0, "visits": 7, "last_active": now, "created_at": now, "updated_at": now})
    api.post("/api/customers", {"name": "Ada L.", "email": "ada@example.com"})
    consumers.drain("CustomerIngestQueue")
    ada = db.customers.find_one({"email": "ada@example.com"})
    assert (ada["name"], ada["spend"], ada["visits"]) == ("Ada L.", 500.0, 7)
