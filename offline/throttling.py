"""What AWS answers before a function runs: 429 for an HTTP API route past its token bucket (here); for a function past
its reserved concurrency (offline.invoker.Throttled) the reply each service gives: a Function URL's 429, API
Gateway's 500."""
from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable

from offline.template import Throttle

Clock = Callable[[], float]
# How the runner's events name a Function URL's only route, as Lambda's do.
FUNCTION_URL_ROUTE_KEY = "$default"


class TokenBucket:
    """API Gateway's throttle: full at first, refilled at `rate` tokens a second up to `burst`; a call takes one or
    is refused. A throttle missing either number limits nothing (only the account's limits, not served here, would)."""

    def __init__(self, throttle: Throttle, clock: Clock = time.monotonic):
        self.throttle = throttle
        self.clock = clock
        self.tokens = float(throttle.burst or 0)
        self.updated = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        rate, burst = self.throttle.rate, self.throttle.burst
        if rate is None or burst is None:
            return True
        with self._lock:
            now = self.clock()
            self.tokens = min(float(burst), self.tokens + (now - self.updated) * rate)
            self.updated = now
            if self.tokens < 1:
                return False
            self.tokens -= 1
            return True


class RouteThrottles:
    """A bucket per route key, as API Gateway keeps one per route: a route in `routes` has its own settings, any
    other the stage's default ones."""

    def __init__(self, default: Throttle, routes: dict[str, Throttle], clock: Clock = time.monotonic):
        self.default = default
        self.routes = routes
        self.clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def allows(self, route_key: str) -> bool:
        with self._lock:
            bucket = self._buckets.get(route_key)
            if bucket is None:
                bucket = self._buckets[route_key] = TokenBucket(self.routes.get(route_key, self.default), self.clock)
        return bucket.take()


def too_many_requests() -> dict[str, Any]:
    """API Gateway's 429 for a route past its throttle."""
    return {"statusCode": 429, "headers": {"content-type": "application/json"},
            "body": json.dumps({"message": "Too Many Requests"})}


def lambda_throttled(event: dict[str, Any]) -> dict[str, Any]:
    """A function past its reserved concurrency: a Function URL answers Lambda's 429; API Gateway turns the failed
    invocation into its own 500 (a proxy integration cannot map it), which is why the routes' throttles sit below
    what the reservations admit (template.yaml), so that a flood meets the 429 first."""
    if event.get("routeKey") == FUNCTION_URL_ROUTE_KEY:
        return {"statusCode": 429, "headers": {"content-type": "application/json",
                                               "x-amzn-errortype": "TooManyRequestsException"},
                "body": json.dumps({"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded", "Type": "User",
                                    "message": "Rate Exceeded."})}
    return {"statusCode": 500, "headers": {"content-type": "application/json"},
            "body": json.dumps({"message": "Internal Server Error"})}
