"""Campaign fixtures: an audience, a segment over it, and a scripted vendor for the send consumer."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from crm.models.common import to_iso, utcnow
from crm.services.customers import upsert_customers


@pytest.fixture
def audience(db):
    """120 customers with spend 0..119; the segment `spend >= 0` selects them all."""
    now = to_iso(utcnow())
    upsert_customers(db, [{"name": f"Customer {i:03d}", "email": f"c{i:03d}@example.com",
                                      "spend": float(i), "accepted_at": now} for i in range(120)])
    return 120


@pytest.fixture
def segment_id(api, audience):
    status, segment, _ = api.post("/api/segments", {"name": "Everyone", "rules": {"field": "spend", "op": ">=",
                                                                                   "value": 0}})
    assert status == 201
    return segment["id"]


class ScriptedVendor:
    """A vendor over real HTTP whose answers the test scripts: a list of status codes, then 202s."""

    def __init__(self):
        self.script: list[int] = []
        self.received: list[dict] = []
        vendor = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802 - the base class's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = vendor.script.pop(0) if vendor.script else 202
                vendor.received.append({"status": status, "key": self.headers.get("X-Vendor-Key"), "at": time.time(),
                                        **body})
                reply = {"results": [{"log_id": m["log_id"], "vendor_message_id": f"v-{m['log_id']}",
                                      "status": "ACCEPTED"} for m in body["messages"]]} if status == 202 else {}
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/send"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def sent_log_ids(self) -> list[str]:
        return [m["log_id"] for r in self.received if r["status"] == 202 for m in r["messages"]]


@pytest.fixture
def vendor(env, monkeypatch):
    from crm.config import get_settings

    scripted = ScriptedVendor()
    monkeypatch.setenv("VENDOR_URL", scripted.url)
    get_settings.cache_clear()
    yield scripted
    scripted.server.shutdown()
