"""EventBridge schedules, done locally: rate(...) expressions tick (divided by the time scale) and invoke."""
from __future__ import annotations

import json
import re
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Callable

from offline.invoker import InvocationError, InvocationTimeout
from offline.template import ACCOUNT_ID, STACK_NAME, ScheduleSource

UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86_400}
RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|hour|day)s?\s*\)$")


def rate_seconds(expression: str) -> float | None:
    """The period of rate(N unit); None for anything else (cron(...) included)."""
    match = RATE.match(expression.strip())
    if not match or int(match.group(1)) < 1:
        return None
    return int(match.group(1)) * UNIT_SECONDS[match.group(2)]


def rule_arn(function: str, source: ScheduleSource) -> str:
    return f"arn:aws:events:us-east-1:{ACCOUNT_ID}:rule/{STACK_NAME}-{function}{source.name}"


def scheduled_event(function: str, source: ScheduleSource, now: datetime | None = None) -> Any:
    """What EventBridge sends the target: its Input when the template sets one, else a Scheduled Event."""
    if source.input is not None:
        return json.loads(source.input)
    now = now or datetime.now(timezone.utc)
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": ACCOUNT_ID, "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "region": "us-east-1",
            "resources": [rule_arn(function, source)], "detail": {}}


class Schedule(threading.Thread):
    """One schedule: a tick every period; each tick invokes in its own thread, so a slow run delays no tick."""

    def __init__(self, function: str, source: ScheduleSource, period: float, invoke: Callable[[str, Any], Any],
                 log: Callable[[str, str], None], stop: threading.Event):
        super().__init__(name=f"schedule-{function}-{source.name}", daemon=True)
        self.function = function
        self.source = source
        self.period = period
        self.invoke = invoke
        self.log = log
        self.stop_event = stop
        self.ticks = 0

    def run(self) -> None:
        # A rate rule first fires one period after it is created.
        next_at = time.monotonic() + self.period
        while not self.stop_event.wait(max(0.0, next_at - time.monotonic())):
            self.ticks += 1
            threading.Thread(target=self._tick, args=(self.ticks,), daemon=True,
                             name=f"{self.name}-{self.ticks}").start()
            next_at += self.period
            if next_at < time.monotonic():  # ticks missed while the machine slept are not all run at once
                next_at = time.monotonic() + self.period

    def _tick(self, number: int) -> None:
        started = time.perf_counter()
        try:
            self.invoke(self.function, scheduled_event(self.function, self.source))
            outcome = "ok"
        except (InvocationError, InvocationTimeout) as exc:
            outcome = f"failed: {exc}"
        self.log("schedule", f"{self.source.expression} #{number} -> {self.function} {outcome} "
                             f"{(time.perf_counter() - started) * 1000:.0f} ms")
