"""A sending rate shared by the calls of one container."""
from __future__ import annotations

import threading
import time


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
