"""Faults through the whole local system (runner, moto, SecantusDB): a database that goes away mid-ingest, a
vendor that is down mid-campaign, a consumer killed mid-batch, and a poison message redriven after its fix."""
from __future__ import annotations

import contextlib
import io
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import boto3
import httpx
from pymongo import MongoClient

from offline import services, template
from offline.redrive import redrive, source_of
from offline.runner import OfflineRunner
from tests.conftest import TEMPLATE


def wait_until(check, timeout: float, what, interval: float = 0.2):
    """`what` says what was awaited: text, or a function giving it (with figures read when the wait fails)."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, \
            f"{what() if callable(what) else what} did not happen within {timeout:.0f} s"
        time.sleep(interval)
    return value


def _visible(sqs, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])[
        "Attributes"]["ApproximateNumberOfMessages"]


@contextlib.contextmanager
def running(env: dict[str, str], queues, log: io.StringIO | None = None, retry_delay_seconds: float = 1,
            time_scale: float = 1.0) -> Iterator[tuple[httpx.Client, int]]:
    """The runner over env, failed messages visible again after retry_delay_seconds, schedules and delays time_scale
    times faster; an HTTP client signed in."""
    port = services.free_port()
    env = {"VENDOR_URL": f"http://127.0.0.1:{port}/api/mock-send",
           "RECEIPT_URL": f"http://127.0.0.1:{port}/_url/ReceiptsFunction/api/delivery-receipt", **env}
    runner = OfflineRunner(template.load(TEMPLATE, services.LOCAL_PARAMETERS, queues), queues, env, port=port,
                           retry_delay_seconds=retry_delay_seconds, reload=False, out=log or io.StringIO(),
                           time_scale=time_scale).start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            token = http.post("/api/auth/dev-token", json={"email": "ops@example.com"}).json()["token"]
            http.headers["Authorization"] = f"Bearer {token}"
            yield http, port
    finally:
        runner.stop()


def test_database_stopped_mid_ingest_loses_and_doubles_no_acknowledged_customer(stack_env, queues, tmp_path):
    storage = str(tmp_path / "mongo-data")
    mongo = services.MongoServer(storage)
    acknowledged: set[str] = set()
    refused = 0
    try:
        # Messages failing while the database is down come back after 5 s, not 1: their five receives (then the
        # DLQ) outlast a restart that a loaded machine makes slow, as the template's 360 s visibility timeout does.
        with running({**stack_env, "MONGO_URI": mongo.uri}, queues, retry_delay_seconds=5) as (http, _):
            posting_ends = time.monotonic() + 240
            for batch in range(10):
                customers = [{"name": f"Customer {batch}-{i}", "email": f"c{batch:02d}-{i:04d}@example.com"}
                             for i in range(400)]
                if batch == 4:
                    mongo.stop()
                    back_at = time.monotonic() + 3
                # Retried until acknowledged, within one bound for all ten batches (however slow a loaded machine makes
                # the restart, a service that never comes back fails this test in minutes, not per batch).
                while time.monotonic() < posting_ends:
                    if mongo.process.poll() is not None and time.monotonic() > back_at:
                        mongo = services.MongoServer(storage, port=mongo.port)
                    reply = http.post("/api/customers", json={"customers": customers},
                                      headers={"Idempotency-Key": f"batch-{batch}"})
                    if reply.status_code == 202:
                        acknowledged.update(c["email"] for c in customers)
                        break
                    assert reply.status_code == 503, reply.text
                    refused += 1
                    time.sleep(0.5)
            db = MongoClient(mongo.uri)[stack_env["MONGO_DB"]]
            dead = boto3.client("sqs", endpoint_url=stack_env["SQS_ENDPOINT_URL"], region_name="us-east-1")
            wait_until(lambda: db.customers.count_documents({}) >= len(acknowledged), 300,
                       lambda: f"every customer written ({db.customers.count_documents({})} of {len(acknowledged)}; "
                               f"CustomerIngestDLQ holds {_visible(dead, queues['CustomerIngestDLQ'].url)})")
            time.sleep(2)  # anything still being redelivered would now show as a second document
            assert refused > 0, "the database was down while a batch was posted"
            assert db.customers.count_documents({}) == len(acknowledged) == 4_000
            assert set(db.customers.distinct("email")) == acknowledged
    finally:
        mongo.stop()


class FlakyVendor:
    """In front of the mock vendor: 503 to every call while down, then passes calls through."""

    def __init__(self):
        self.down = True
        self.refused = 0
        self.target = ""
        vendor = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802 - the base class's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if vendor.down:
                    vendor.refused += 1
                    status, content = 503, b"{}"
                else:
                    reply = httpx.post(vendor.target, content=body, timeout=60,
                                       headers={"Content-Type": "application/json",
                                                "X-Vendor-Key": self.headers["X-Vendor-Key"]})
                    status, content = reply.status_code, reply.content
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/send"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _audience(db, count: int) -> None:
    from crm.models.common import to_iso, utcnow
    from crm.services.customers import upsert_customers

    upsert_customers(db, [{"name": f"Person {i:03d}", "email": f"p{i:03d}@example.com",
                                      "spend": float(i), "accepted_at": to_iso(utcnow())} for i in range(count)])


def test_vendor_down_mid_campaign_is_retried_and_the_campaign_completes_when_it_returns(stack_env, queues, db):
    _audience(db, 150)
    vendor = FlakyVendor()
    try:
        # Six times faster: the sends the vendor refused come back after 5 s, not 30, and the roll-up ticks every 10 s.
        with running({**stack_env, "VENDOR_URL": vendor.url}, queues, time_scale=6) as (http, port):
            vendor.target = f"http://127.0.0.1:{port}/api/mock-send"
            segment = http.post("/api/segments", json={"name": "All", "rules": {"field": "spend", "op": ">=",
                                                                                "value": 0}}).json()
            campaign = http.post("/api/campaigns", json={"name": "Sale", "segment_id": segment["id"],
                                                         "message": "Hi {{first_name}}"}).json()
            wait_until(lambda: vendor.refused >= 8, 60, "sends refused by the vendor")
            assert db.communication_logs.count_documents({"vendor_message_id": {"$ne": None}}) == 0
            vendor.down = False
            detail = wait_until(lambda: (d := http.get(f"/api/campaigns/{campaign['id']}").json())["status"]
                                == "COMPLETED" and d, 180, "the campaign completing")
        stats = detail["stats"]
        assert stats["audience"] == 150 and stats["sent"] + stats["failed"] == 150 and stats["queued"] == 0
        assert db.communication_logs.count_documents({"vendor_message_id": None}) == 0
        assert db.vendor_messages.count_documents({}) == 150, "the vendor accepted each message once"
    finally:
        vendor.server.shutdown()


def _worker_pids(function: str) -> list[int]:
    """This test's runner workers for one function (Linux: read from /proc)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    args = f.read().split(b"\0")
            except OSError:
                continue
            if b"offline.lambda_worker" in args and function.encode() in args:
                pids.append(int(entry))
    return pids


def test_consumer_killed_mid_batch_is_redelivered_and_writes_each_customer_once(env, db, queues):
    from crm import queues as sqs_queues
    from crm.services.customers import QUEUE_KIND

    # Two full messages before the runner starts, so one invocation takes both (batch size 2).
    records = [{"name": f"K {i}", "email": f"k{i:04d}@example.com", "accepted_at": "2026-11-25T10:00:00.000Z"}
               for i in range(1800)]
    assert sqs_queues.enqueue(env["SQS_CUSTOMER_QUEUE_URL"], QUEUE_KIND, records[:900]) == 1
    assert sqs_queues.enqueue(env["SQS_CUSTOMER_QUEUE_URL"], QUEUE_KIND, records[900:]) == 1
    log = io.StringIO()
    with running(env, queues, log):
        wait_until(lambda: db.customers.count_documents({}) >= 900, 60, "the first message applied", 0.02)
        for pid in _worker_pids("CustomerIngestFunction"):
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: db.customers.count_documents({}) >= 1800, 120, "every customer written")
        time.sleep(3)
    assert "CustomerIngestFunction failed the whole batch" in log.getvalue(), "the kill landed mid-invocation"
    assert db.customers.count_documents({}) == 1800
    assert len(db.customers.distinct("email")) == 1800


def test_poison_message_is_dead_lettered_then_redriven_after_the_fix(api, consumers, db, sqs, queues):
    api.post("/api/orders", {"order_id": "o-poison", "customer_email": "late@example.com", "amount": 30,
                             "items": [{"sku": "TEA", "name": "Tea", "qty": 1, "price": 30}]})
    assert consumers.drain("OrderIngestQueue") == 5, "five receives, then the dead-letter queue"
    assert source_of("OrderIngestDLQ") == "OrderIngestQueue"
    api.post("/api/customers", {"name": "Late", "email": "late@example.com"})  # the fix: its customer exists
    consumers.drain("CustomerIngestQueue")

    assert redrive(sqs, queues["OrderIngestDLQ"].url, queues["OrderIngestQueue"].url) == 1
    assert consumers.drain("OrderIngestQueue") == 1
    assert consumers.messages("OrderIngestDLQ") == []
    customer = db.customers.find_one({"email": "late@example.com"})
    assert customer["spend"] == 30 and customer["visits"] == 1
    assert [o["order_id"] for o in db.orders.find()] == ["o-poison"]
