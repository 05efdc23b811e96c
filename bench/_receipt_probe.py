"""The receipt URL's reply time while a campaign runs, beside GET /openapi.json's in the same moments: a vendor's
signed receipt (for a log that does not exist, so it changes nothing) and the document, one after the other, every
PAUSE seconds until stopped."""
from __future__ import annotations

import json
import socket
import statistics
import threading
import time

import httpx
from bson import ObjectId

from crm import signing
from crm.config import DEV_WEBHOOK_SECRET

PAUSE = 1.0
BASELINE = "GET /openapi.json"
RECEIPT = "POST /api/delivery-receipt (Function URL)"


class ReceiptProbe:
    def __init__(self, base_url: str, receipt_url: str):
        self.base_url, self.receipt_url = base_url, receipt_url
        self.latencies: dict[str, list[float]] = {BASELINE: [], RECEIPT: []}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ReceiptProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        # As a vendor's client sends: without TCP_NODELAY, a POST's body waits for the ACK of its headers, which
        # loopback delays by up to 40 ms; the GET has no body, so the two would not be measured alike.
        transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        with httpx.Client(timeout=30, transport=transport) as http:
            # One pair at once, so that a campaign done within the first pause still has its figures.
            while True:
                self._time(BASELINE, lambda: http.get(f"{self.base_url}/openapi.json"))
                self._time(RECEIPT, lambda: http.post(self.receipt_url, content=(body := self._receipt()),
                                                      headers=self._signed(body)))
                if self._stop.wait(PAUSE):
                    return

    def _time(self, name: str, call) -> None:
        started = time.perf_counter()
        reply = call()
        self.latencies[name].append((time.perf_counter() - started) * 1000)
        if reply.status_code >= 300:
            self.errors.append(f"{name}: {reply.status_code}")

    @staticmethod
    def _receipt() -> bytes:
        return json.dumps({"receipts": [{"vendor_message_id": "vm_probe", "log_id": str(ObjectId()),
                                         "status": "SENT", "timestamp": "2026-12-04T10:00:00Z"}]}).encode()

    @staticmethod
    def _signed(body: bytes) -> dict[str, str]:
        timestamp = str(int(time.time()))
        return {"Content-Type": "application/json", "X-Vendor-Timestamp": timestamp,
                "X-Vendor-Signature": signing.sign(DEV_WEBHOOK_SECRET, timestamp, body)}

    def p50s(self) -> tuple[float, float]:
        """(receipt URL p50, baseline p50) in ms."""
        if self.errors:
            raise SystemExit(f"the receipt probe was refused: {self.errors[:3]}")
        return statistics.median(self.latencies[RECEIPT]), statistics.median(self.latencies[BASELINE])
