"""The messaging vendor's send API: bounded rate, timeouts, and retries with backoff for what is transient."""
from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass

import httpx

from crm.config import Settings

ATTEMPTS = 4
BACKOFF_SECONDS = 0.2
BATCH = 100


@dataclass(frozen=True)
class Accepted:
    vendor_message_id: str


@dataclass(frozen=True)
class Rejected:
    """A 4xx other than throttling: sending again would fail the same way."""
    reason: str


class VendorUnavailable(Exception):
    """5xx, throttling or timeouts outlasted the retries; the send is tried again later."""


class RateLimiter:
    """At most `per_second` messages a second from this container, spaced evenly."""

    def __init__(self, per_second: float):
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self.next_at = 0.0
        self.lock = threading.Lock()

    def wait(self, messages: int = 1) -> None:
        with self.lock:
            now = time.monotonic()
            delay = self.next_at - now
            self.next_at = max(now, self.next_at) + self.interval * messages
        if delay > 0:
            time.sleep(delay)


class VendorClient:
    def __init__(self, settings: Settings, http: httpx.Client | None = None):
        self.url = settings.vendor_url
        self.key = settings.secret("vendor_api_key")
        self.timeout = settings.vendor_timeout_seconds
        self.http = http or httpx.Client(timeout=self.timeout)
        self.limiter = RateLimiter(settings.vendor_max_per_second)
        # One call of BATCH messages at the worst: the rate limiter's wait, then every attempt timing out.
        self.longest_call_seconds = (BATCH * self.limiter.interval + ATTEMPTS * self.timeout
                                     + BACKOFF_SECONDS * 2 ** ATTEMPTS)

    def send(self, messages: list[dict], deadline: float | None = None) -> dict[str, Accepted | Rejected]:
        """Up to BATCH messages ({log_id, to, message}) in one call; the outcome of each by log_id.

        Each log_id is the vendor's idempotency key, so a call repeated after a lost reply sends nothing twice.
        No attempt starts that could outlast the deadline (seconds since the epoch).
        """
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(BACKOFF_SECONDS * 2 ** (attempt - 1) * (1 + random.random()))  # noqa: S311 - jitter
            if deadline is not None and time.time() + self.timeout > deadline:
                break
            self.limiter.wait(len(messages))
            headers = {"X-Vendor-Key": self.key}
            if len(messages) == 1:
                headers["Idempotency-Key"] = messages[0]["log_id"]
            try:
                reply = self.http.post(self.url, json={"messages": messages}, headers=headers)
            except httpx.TransportError:
                continue
            if reply.status_code in (200, 201, 202):
                return {r["log_id"]: Accepted(r["vendor_message_id"]) for r in reply.json()["results"]}
            if reply.status_code == 429 or reply.status_code >= 500:
                continue
            rejected = Rejected(f"vendor answered {reply.status_code}")
            return {m["log_id"]: rejected for m in messages}
        raise VendorUnavailable(f"the vendor did not accept {len(messages)} message(s) in time")

    def status(self, vendor_message_id: str) -> str | None:
        """What the vendor says became of a message (SENT, FAILED, or still ACCEPTED); None when it cannot say."""
        try:
            reply = self.http.get(f"{self.url.rstrip('/')}/{vendor_message_id}", headers={"X-Vendor-Key": self.key})
        except httpx.TransportError:
            return None
        if reply.status_code != 200:
            return None
        status = reply.json().get("status")
        return status if status in ("ACCEPTED", "SENT", "FAILED") else None


_clients: dict[tuple[str, float], VendorClient] = {}


def get_vendor(settings: Settings) -> VendorClient:
    key = (settings.vendor_url, settings.vendor_max_per_second)
    if key not in _clients:
        _clients[key] = VendorClient(settings)
    return _clients[key]
