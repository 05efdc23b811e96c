"""Dev-only counting for the benchmarks: the work a run puts on the AWS and Atlas bills, counted, not guessed.

A worker started with --count tallies its MongoDB commands (a pymongo CommandListener) and its AWS calls (botocore
hooks) and hands the tally back with each reply; the runner adds its own SQS calls (the event source pollers, which
AWS bills too), each function's invocations and durations, and its HTTP requests. Nothing of this reaches a
function's environment. Workers import this module, so it imports only the standard library at module level.

A snapshot (OfflineRunner.counts) is a plain dict of additive numbers: {"functions": {name: {key: n}}, "runner":
{key: n}}; difference() of two is what happened in between, totals() its headline figures.
"""
from __future__ import annotations

import math
import threading
from collections import Counter, defaultdict
from typing import Any, Callable, Mapping

# SQS bills each 64 KB chunk of a request's payload as one request.
SQS_CHUNK_BYTES = 64 * 1024
CAMPAIGNS = "campaigns"  # crm.db.CAMPAIGNS; not imported, so that the runner never loads the product's code
CAMPAIGN_WRITES = ("update", "findAndModify")
SES_SENDS = ("aws.sesv2.SendEmail", "aws.ses.SendEmail", "aws.ses.SendRawEmail")

Add = Callable[[str, float], None]


class Tally:
    """Counts in one process; take() hands over what was counted since the last take."""

    def __init__(self) -> None:
        self._counts: Counter = Counter()
        self._lock = threading.Lock()

    def add(self, key: str, n: float = 1) -> None:
        with self._lock:
            self._counts[key] += n

    def take(self) -> dict[str, float]:
        with self._lock:
            counts, self._counts = dict(self._counts), Counter()
        return counts


def count_mongo_commands(add: Add) -> None:
    """Every command of every MongoClient created after this call (the driver copies global listeners at creation)."""
    from pymongo import monitoring

    class Listener(monitoring.CommandListener):
        # Started, not succeeded: a command that fails still reached the server.
        def started(self, event: monitoring.CommandStartedEvent) -> None:
            add(f"mongo.{event.command_name}", 1)
            if event.command_name in CAMPAIGN_WRITES and event.command.get(event.command_name) == CAMPAIGNS:
                add("campaign_writes", 1)

        def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
            pass

        def failed(self, event: monitoring.CommandFailedEvent) -> None:
            pass

    monitoring.register(Listener())


def _size(body: Any) -> int:
    if isinstance(body, dict):  # the query protocol's form fields
        return sum(len(str(k)) + len(str(v)) for k, v in body.items())
    return len(body or b"")


def count_aws_calls(events, add: Add) -> None:
    """Hooks one botocore client's events: each API call that got an answer, as aws.<service>.<operation>; for SQS
    also its billed 64 KB chunks (of the request or the answer, whichever is larger) and the receives that got
    nothing; the calls AWS answered with an error also as aws_errors.<service>.<operation>. after-call comes once
    per call, however many attempts its retries made."""

    def before(params: dict, context: dict, **_) -> None:
        context["counted_request_bytes"] = _size(params.get("body"))

    def after(http_response, parsed: dict, model, context: dict, **_) -> None:
        service = model.service_model.service_name
        add(f"aws.{service}.{model.name}", 1)
        if http_response.status_code >= 300:  # a throttled or refused send: counted as a call, not as an e-mail
            add(f"aws_errors.{service}.{model.name}", 1)
        if service == "sqs":
            size = max(context.get("counted_request_bytes", 0), len(getattr(http_response, "content", b"") or b""))
            add("sqs_billed", max(1, math.ceil(size / SQS_CHUNK_BYTES)))
            if model.name == "ReceiveMessage" and not parsed.get("Messages"):
                add("sqs_empty_receives", 1)

    events.register("before-call", before)
    events.register("after-call", after)


def count_this_process(tally: Tally) -> None:
    """A worker's counting: MongoDB commands, and the calls of every botocore client made from now on."""
    import botocore.session

    count_mongo_commands(tally.add)
    create_client = botocore.session.Session.create_client

    def create_counted_client(self, *args, **kwargs):
        client = create_client(self, *args, **kwargs)
        count_aws_calls(client.meta.events, tally.add)
        return client

    botocore.session.Session.create_client = create_counted_client


class Counts:
    """The runner's side: what each function's invocations counted and cost in time, and the runner's own calls."""

    def __init__(self, memory_mb: Mapping[str, int]):
        self.memory_mb = dict(memory_mb)
        self._functions: defaultdict[str, Counter] = defaultdict(Counter)
        self._runner: Counter = Counter()
        self._lock = threading.Lock()

    def add(self, key: str, n: float = 1, function: str | None = None) -> None:
        """The runner's own calls (its SQS polls), or what it did for one function (an HTTP request to it)."""
        with self._lock:
            (self._functions[function] if function else self._runner)[key] += n

    def invocation(self, function: str, seconds: float, init_seconds: float,
                   counted: Mapping[str, float] | None) -> None:
        """One invocation (also one that failed, timed out or was killed: Lambda bills those too). Lambda rounds
        each duration up to the millisecond, and bills a cold start's init since August 2025."""
        gb = self.memory_mb.get(function, 128) / 1024
        with self._lock:
            tally = self._functions[function]
            tally.update(counted or {})
            tally.update({"invocations": 1, "seconds": seconds, "init_seconds": init_seconds,
                          "gb_seconds": gb * (math.ceil(seconds * 1000) + math.ceil(init_seconds * 1000)) / 1000,
                          "init_gb_seconds": gb * math.ceil(init_seconds * 1000) / 1000})

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"functions": {name: dict(tally) for name, tally in self._functions.items()},
                    "runner": dict(self._runner)}


def difference(after: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any]:
    """after - before, leaf by leaf (a key only in after counts from zero); what did not change is left out."""
    result: dict[str, Any] = {}
    for key, value in after.items():
        changed = (difference(value, before.get(key) or {}) if isinstance(value, Mapping)
                   else value - (before.get(key) or 0))
        if changed:
            result[key] = changed
    return result


def _scopes(counts: Mapping[str, Any]) -> list[Mapping[str, float]]:
    """Every tally in a snapshot: each function's, the runner's, and any other scope a benchmark added."""
    return [*counts.get("functions", {}).values(),
            *(scope for name, scope in counts.items() if name != "functions")]


def totals(counts: Mapping[str, Any]) -> dict[str, float]:
    """A snapshot's headline figures, summed over every scope."""
    summed: Counter = Counter()
    for scope in _scopes(counts):
        summed.update(scope)
    return {
        "mongo_commands": sum(n for key, n in summed.items() if key.startswith("mongo.")),
        "transactions": summed["mongo.commitTransaction"],
        "campaign_writes": summed["campaign_writes"],
        "sqs_requests": sum(n for key, n in summed.items() if key.startswith("aws.sqs.")),
        # An empty receive is an idle poller's, at a rate set by the runner's 1 s wait (Lambda's pollers wait up to
        # 20 s): it grows with wall time, not with recipients, so it is kept apart from the billed work.
        "sqs_billed_requests": summed["sqs_billed"] - summed["sqs_empty_receives"],
        "sqs_empty_receives": summed["sqs_empty_receives"],
        "lambda_invocations": summed["invocations"],
        "lambda_seconds": summed["seconds"] + summed["init_seconds"],
        "lambda_gb_seconds": summed["gb_seconds"],
        "lambda_init_gb_seconds": summed["init_gb_seconds"],
        "ses_emails": sum(summed[key] - summed[key.replace("aws.", "aws_errors.", 1)] for key in SES_SENDS),
        "api_requests": summed["http.api"],
        "function_url_requests": summed["http.function_url"],
    }
