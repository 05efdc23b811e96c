"""The mock messaging vendor's send API (or any vendor speaking it): bounded rate, timeouts, and retries with
backoff for what is transient."""
from __future__ import annotations

import random
import time
from typing import Any

import httpx

from crm.channels import BATCH, Accepted, ChannelUnavailable, Deferred, HandingOver, Rejected
from crm.channels.rate import RateLimiter
from crm.config import Settings

ATTEMPTS = 4
BACKOFF_SECONDS = 0.2
# What the vendor takes of a message; the e-mail channel's subject and unsubscribe link are not for it.
VENDOR_FIELDS = ("log_id", "to", "message")


class MockChannel:
    def __init__(self, settings: Settings, http: httpx.Client | None = None):
        self.url = settings.vendor_url
        self.key = settings.secret("vendor_api_key")
        self.timeout = settings.vendor_timeout_seconds
        self.http = http or httpx.Client(timeout=self.timeout)
        self.limiter = RateLimiter(settings.vendor_max_per_second)
        self.checked_every = BATCH  # one vendor call takes the whole batch at once
        self.repeats_safely = True
        # One call of BATCH messages at the worst: the rate limiter's wait, then every attempt timing out.
        self.attempt_seconds = self.timeout
        self.longest_call_seconds = (BATCH * self.limiter.interval + ATTEMPTS * self.timeout
                                     + BACKOFF_SECONDS * 2 ** ATTEMPTS)

    def send(self, messages: list[dict[str, Any]], deadline: float | None = None,
             handing_over: HandingOver | None = None) -> dict[str, Accepted | Rejected | Deferred]:
        """Up to BATCH messages in one call; each log_id is the vendor's idempotency key, so a call repeated after a
        lost reply sends nothing twice. A 4xx other than throttling rejects them all."""
        messages = [{field: m[field] for field in VENDOR_FIELDS} for m in messages]
        throttled_only = True
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(BACKOFF_SECONDS * 2 ** (attempt - 1) * (1 + random.random()))  # noqa: S311 - jitter
            if deadline is not None and time.time() + self.attempt_seconds > deadline:
                break
            self.limiter.wait(len(messages))
            headers = {"X-Vendor-Key": self.key}
            if len(messages) == 1:
                headers["Idempotency-Key"] = messages[0]["log_id"]
            try:
                reply = self.http.post(self.url, json={"messages": messages}, headers=headers)
            except httpx.TransportError:
                throttled_only = False
                continue
            if reply.status_code in (200, 201, 202):
                return {r["log_id"]: Accepted(r["vendor_message_id"]) for r in reply.json()["results"]}
            if reply.status_code == 429 or reply.status_code >= 500:
                throttled_only &= reply.status_code == 429
                continue
            rejected = Rejected(f"vendor answered {reply.status_code}")
            return {m["log_id"]: rejected for m in messages}
        # Only throttled (or out of time before any attempt): the messages wait; a failing vendor counts an attempt.
        raise ChannelUnavailable(f"the vendor did not accept {len(messages)} message(s) in time",
                                 waiting=throttled_only)

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

