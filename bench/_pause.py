"""What pausing and resuming a campaign costs (python -m bench.fanout --pause): the same campaign to the same
audience twice on one local stack, once straight through (the baseline) and once paused when about a tenth of it has
been handed over and resumed after a wait; a counting proxy in front of the mock vendor counts every message it is
handed by log id (a duplicate send is a log handed over twice, whatever the vendor then does with it)."""
from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
from bson import ObjectId
from pymongo import MongoClient

from bench import _counts
from bench._stack import local_stack
from bench._table import Row

PAUSED_SECONDS = 10.0
MOCK_ENV = {"VENDOR_MAX_PER_SECOND": "0", "MOCK_VENDOR_DELAY_SECONDS": "0", "VENDOR_TIMEOUT_SECONDS": "30"}


class CountingVendor:
    """Passes the send function's calls to the mock vendor and counts each message handed over, with its time."""

    def __init__(self) -> None:
        self.target = ""
        self.handed: Counter[str] = Counter()
        self.first_after: dict[float, float] = {}
        self.times: list[float] = []
        self.lock = threading.Lock()
        vendor = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802 - the base class's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                reply = httpx.post(vendor.target, content=body, timeout=60, headers={
                    "Content-Type": "application/json", "X-Vendor-Key": self.headers["X-Vendor-Key"]})
                if reply.status_code == 202:
                    with vendor.lock:
                        now = time.time()
                        for message in json.loads(body)["messages"]:
                            vendor.handed[message["log_id"]] += 1
                            vendor.times.append(now)
                self.send_response(reply.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply.content)))
                self.end_headers()
                self.wfile.write(reply.content)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/send"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self) -> int:
        with self.lock:
            return len(self.handed)

    def first_since(self, moment: float) -> float | None:
        with self.lock:
            return min((t for t in self.times if t >= moment), default=None)


def _wait(check, timeout: float, what: str) -> float:
    started = time.time()
    while not check():
        if time.time() - started > timeout:
            raise SystemExit(f"{what} did not happen within {timeout:.0f} s (see .local/bench-runner.log)")
        time.sleep(0.1)
    return time.time()


def run_pause(recipients: int, mongo_uri: str | None, seed_customers, everyone_segment) -> list[Row]:
    vendor = CountingVendor()
    with local_stack(extra_env={**MOCK_ENV, "VENDOR_URL": vendor.url}, mongo_uri=mongo_uri, count=True) as stack:
        vendor.target = f"{stack['url']}/api/mock-send"
        db = MongoClient(stack["mongo_uri"], tz_aware=True)[stack["env"]["MONGO_DB"]]
        seed_customers(db, recipients)
        with httpx.Client(base_url=stack["url"], timeout=120) as http:
            segment = everyone_segment(http)

            def campaign(name: str) -> ObjectId:
                reply = http.post("/api/campaigns", json={"name": name, "segment_id": segment["id"],
                                                          "message": "Hi {{name}}, 20% off this weekend!"})
                reply.raise_for_status()
                return ObjectId(reply.json()["id"])

            def completed(campaign_id: ObjectId) -> bool:
                return db.campaigns.find_one({"_id": campaign_id}, {"status": 1})["status"] == "COMPLETED"

            before = stack["runner"].counts()
            started = time.time()
            straight = campaign("Straight through")
            straight_seconds = _wait(lambda: completed(straight), 3600, "the baseline campaign") - started
            straight_counts = _counts.settled_counts(stack["runner"], before)
            print(f"  baseline, straight through: POST -> COMPLETED {straight_seconds:.1f} s", flush=True)

            handed_before = vendor.count()
            before = stack["runner"].counts()
            started = time.time()
            paused_id = campaign("Paused and resumed")
            _wait(lambda: vendor.count() >= handed_before + recipients // 10, 600, "a tenth handed over")
            http.post(f"/api/campaigns/{paused_id}/pause").raise_for_status()
            paused_at = time.time()
            at_reply = vendor.count()
            time.sleep(PAUSED_SECONDS)
            while_paused = vendor.count()
            parked = db.communication_logs.count_documents({"campaign_id": paused_id, "parked": True})
            http.post(f"/api/campaigns/{paused_id}/resume").raise_for_status()
            resumed_at = time.time()
            first = _wait(lambda: vendor.first_since(resumed_at) is not None, 600, "a send after the resume")
            first = vendor.first_since(resumed_at) or first
            done = _wait(lambda: completed(paused_id), 3600, "the paused campaign")
            paused_counts = _counts.settled_counts(stack["runner"], before)
    duplicates = sum(n - 1 for n in vendor.handed.values() if n > 1)
    paused_seconds = done - started - (resumed_at - paused_at)
    print(f"  paused when {at_reply - handed_before:,} of {recipients:,} were handed over; "
          f"{while_paused - at_reply} handed after the reply (calls under way), {parked:,} logs parked")
    print(f"  resume -> first send: {first - resumed_at:.2f} s")
    print(f"  duplicate sends (a log handed over twice): {duplicates}")
    print(f"  POST -> COMPLETED less the {resumed_at - paused_at:.0f} s paused: {paused_seconds:.1f} s "
          f"(ratio to straight through {paused_seconds / straight_seconds:.2f})")
    _counts.print_per_thousand({"straight": (straight_counts, recipients), "paused+resumed": (paused_counts,
                                                                                            recipients)})
    if duplicates:
        raise SystemExit(f"{duplicates} duplicate sends")
    return [Row("pause", f"{recipients:,} recipients: POST -> COMPLETED, paused once (time paused left out)",
                paused_seconds, "s", straight_seconds, "the same campaign straight through"),
            Row("pause", "resume -> first send", first - resumed_at, "s", None, "")]
