"""Sending rates: one container's own (the mock vendor's), and a channel's account rate shared by every sender."""
from __future__ import annotations

import random
import threading
import time

from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

# How often a sender tries to take slots from a rate other senders are taking at the same moment.
RESERVE_TRIES = 20


class RateLimiter:
    """At most `per_second` messages a second from this container, spaced evenly."""

    def __init__(self, per_second: float):
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self.next_at = 0.0
        self.lock = threading.Lock()

    def wait(self, messages: int = 1, until: float | None = None) -> bool:
        """Waits for the turn of these messages; False (at once) when it comes after `until` (seconds since the
        epoch)."""
        with self.lock:
            now = time.monotonic()
            delay = self.next_at - now
            if until is not None and time.time() + max(0.0, delay) > until:
                return False
            self.next_at = max(now, self.next_at) + self.interval * messages
        if delay > 0:
            time.sleep(delay)
        return True


class SharedRateLimiter:
    """A channel's account rate shared by all its senders (every container of the send function): each takes its
    turns from one small document, a second's worth at a time, so the account's rate is used whichever senders run
    and is never passed. A sender that stops early leaves its turns unused (the rate is under-used a moment, never
    exceeded); one past is never used late."""

    def __init__(self, turns: Collection, key: str, per_second: float):
        self.turns = turns
        self.key = key
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self.chunk = max(1, int(per_second))
        self.mine: list[float] = []  # turns this container took, seconds since the epoch, earliest first
        self.lock = threading.Lock()

    def wait(self, messages: int = 1, until: float | None = None) -> bool:
        """Waits for the turn of these messages; False when it comes after `until` (seconds since the epoch)."""
        if not self.interval:
            return True
        with self.lock:
            now = time.time()
            self.mine = [t for t in self.mine if t >= now - self.interval]
            if len(self.mine) < messages:
                needed = messages - len(self.mine)
                self.mine += self._take(max(self.chunk, needed), needed, until)
            if len(self.mine) < messages:
                return False  # no turn could be taken by then: the message is not sent now, and comes back
            turn = self.mine[messages - 1]
            if until is not None and turn > until:
                return False  # the turns stay this container's, for its next call
            del self.mine[:messages]
        if turn > time.time():
            time.sleep(turn - time.time())
        return True

    def free_at(self) -> float:
        """When the next turn not yet taken by any sender comes (seconds since the epoch)."""
        current = self.turns.find_one({"_id": self.key}, {"next_at": 1})
        return max(time.time(), current["next_at"] if current else 0.0)

    def _take(self, count: int, needed: int | None = None, until: float | None = None) -> list[float]:
        """The next `count` turns of the shared rate, taken with a compare-and-set on its document; none when the
        `needed`-th of them would come after `until` (turns taken and not used are lost to every sender, and
        senders taking turns they cannot use would move the rate ahead of the clock)."""
        for attempt in range(RESERVE_TRIES):
            if attempt:
                time.sleep(random.uniform(0, self.interval))  # noqa: S311 - jitter between contending senders
            now = time.time()
            current = self.turns.find_one({"_id": self.key}, {"next_at": 1})
            start = max(now, current["next_at"]) if current else now
            if until is not None and start + ((needed or count) - 1) * self.interval > until:
                return []
            end = start + count * self.interval
            try:
                if current is None:
                    self.turns.insert_one({"_id": self.key, "next_at": end})
                elif not self.turns.update_one({"_id": self.key, "next_at": current["next_at"]},
                                               {"$set": {"next_at": end}}).modified_count:
                    continue
            except DuplicateKeyError:
                continue
            return [start + i * self.interval for i in range(count)]
        return []  # contended past reason: no turn is invented (it could be another sender's)
