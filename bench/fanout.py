"""Campaign fan-out to 100,000 recipients through the running system, beside a raw insert_many of the same
logs into the same server; then the time until the campaign is COMPLETED with the mock vendor.

    python -m bench.fanout [--recipients 100000]

With --channel ses: a 20,000-recipient e-mail campaign (5 % of the addresses on the suppression list) sent through
moto's SES, its events made by offline.ses_feedback until it is COMPLETED, beside the same campaign on the mock
vendor in the same run (each on its own local stack): time to COMPLETED, sends per second, and the consent check's
share of the send phase.

    python -m bench.fanout --channel ses [--recipients 20000]

With --pause: a 10,000-recipient campaign paused when a tenth is handed over and resumed, beside the same campaign
straight through: time from resume to the first send, duplicate sends (0), and the work per 1,000 recipients of each.

    python -m bench.fanout --pause [--recipients 10000]

With --sandbox: SES at 1 message/s, as a new account has it (300 recipients, none suppressed): every one sent, none
failed, as what a send call cannot reach is given back, not failed.

    python -m bench.fanout --sandbox [--recipients 300]

The mock campaign also probes the receipt URL during the campaign (a signed receipt and GET /openapi.json, one
after the other every second) and prints both p50s.
Each run also prints what the campaign counted per 1,000 recipients (offline.counting: MongoDB commands,
transactions, campaign-document writes, SQS requests, Lambda invocations and GB-seconds, SES e-mails, HTTP
requests), from its POST to COMPLETED; --counts-out FILE writes them for `python -m bench.cost --counts FILE`.
--mongo-uri (or MONGO_URI) runs against an existing MongoDB instead of a fresh SecantusDB.
"""
from __future__ import annotations

import argparse
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
from bson import ObjectId
from pymongo import MongoClient

from bench import _counts
from bench._pause import run_pause
from bench._receipt_probe import BASELINE, RECEIPT, ReceiptProbe
from bench._stack import ROOT, add_mongo_option, local_stack
from bench._table import Row, print_table
from crm.consent import suppressions
from crm.consent.gate import reasons_not_to_send
from crm.db import INDEXES, LOGS, SUPPRESSIONS, ensure_indexes
from crm.models.campaigns import COMPLETED
from crm.models.common import utcnow
from offline import services
from offline.ses_feedback import DELIVERY_QUEUE, SentMail, Shares, feedback


def seed_customers(db, count: int) -> None:
    now = utcnow()
    for start in range(0, count, 20_000):
        db.customers.insert_many([{"name": f"Customer {i}", "name_key": f"customer {i}",
                                   "email": f"c{i:07d}@example.com", "phone": None, "spend": float(i % 1000),
                                   "visits": 1, "last_active": now, "created_at": now, "updated_at": now}
                                  for i in range(start, min(start + 20_000, count))])


def everyone_segment(http: httpx.Client) -> dict:
    """Signs the client in (a development token) and creates the segment of every seeded customer."""
    token = http.post("/api/auth/dev-token", json={"email": "bench@example.com"}).json()["token"]
    http.headers["Authorization"] = f"Bearer {token}"
    reply = http.post("/api/segments", json={"name": "All", "rules": {"field": "spend", "op": ">=", "value": 0}})
    reply.raise_for_status()
    return reply.json()


def wait_for(check, timeout: float, what: str) -> float:
    started = time.perf_counter()
    while not check():
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"{what} did not happen within {timeout:.0f} s (see .local/bench-runner.log)")
        time.sleep(0.5)
    return time.perf_counter()


def raw_logs(client: MongoClient, db_name: str, count: int) -> float:
    collection = client[db_name][LOGS]
    collection.create_indexes(INDEXES[LOGS])
    campaign_id, now = ObjectId(), utcnow()
    docs = [{"campaign_id": campaign_id, "customer_id": ObjectId(), "status": "QUEUED",
             "message": f"Hi Customer {i}, 20% off this weekend!",
             "to": {"name": f"Customer {i}", "email": f"c{i:07d}@example.com", "phone": None},
             "vendor_message_id": None, "sent_at": None, "created_at": now, "updated_at": now} for i in range(count)]
    started = time.perf_counter()
    for start in range(0, count, 1000):
        collection.insert_many(docs[start:start + 1000], ordered=False)
    return time.perf_counter() - started


def run(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout")
    parser.add_argument("--recipients", type=int, default=None,
                        help=f"default {MOCK_RECIPIENTS:,}; {SES_RECIPIENTS:,} with --channel ses")
    parser.add_argument("--fan-out-only", action="store_true", help="stop once the fan-out is done")
    parser.add_argument("--channel", choices=("mock", "ses"), default="mock",
                        help="ses: an e-mail campaign through moto's SES beside the same one on the mock vendor")
    parser.add_argument("--consumers", type=int, default=CONSUMERS,
                        help=f"the mock campaign's most consumers per queue (default {CONSUMERS}; the template's "
                             "ConsumerMaxConcurrency caps it); --channel ses and --sandbox run 2")
    parser.add_argument("--sandbox", action="store_true",
                        help=f"SES at {SANDBOX_PER_SECOND:g} message/s, as a new account has it, "
                             f"{SANDBOX_RECIPIENTS} recipients unless given")
    parser.add_argument("--pause", action="store_true",
                        help=f"what pausing and resuming a campaign costs ({PAUSE_RECIPIENTS:,} recipients unless "
                             "given): resume -> first send, duplicate sends, beside the campaign straight through")
    parser.add_argument("--counts-out", type=Path, help="write the counts as JSON, for python -m bench.cost --counts")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="the mock campaign's schedules this many times faster (bench --quick: its completion "
                             "waits for a roll-up tick, not a minute after the stack started)")
    add_mongo_option(parser)
    args = parser.parse_args(argv)
    if args.counts_out and args.fan_out_only:
        parser.error("--counts-out prices a whole campaign: leave out --fan-out-only")
    if args.pause:
        return run_pause(args.recipients or PAUSE_RECIPIENTS, args.mongo_uri, seed_customers, everyone_segment)
    if args.sandbox:
        return run_sandbox(args.recipients or SANDBOX_RECIPIENTS, args.mongo_uri)
    if args.channel == "ses":
        return run_by_channel(args.recipients or SES_RECIPIENTS, args.mongo_uri, args.counts_out)
    args.recipients = args.recipients or MOCK_RECIPIENTS
    # The mock vendor is local; its rate limit is a production concern, not what this measures.
    # Everything shares two cores here, so the vendor's answers get a patient timeout.
    with local_stack(extra_env={"VENDOR_MAX_PER_SECOND": "0", "MOCK_VENDOR_DELAY_SECONDS": "0",
                                "VENDOR_TIMEOUT_SECONDS": "30"}, mongo_uri=args.mongo_uri, count=True,
                     max_consumers=args.consumers, time_scale=args.time_scale) as stack:
        client = MongoClient(stack["mongo_uri"], tz_aware=True)
        db = client[stack["env"]["MONGO_DB"]]
        seed_customers(db, args.recipients)
        ensure_indexes(db)  # as a deploy step would on a big collection: no request waits for it
        with httpx.Client(base_url=stack["url"], timeout=120) as http:
            segment = everyone_segment(http)
            print(f"fan-out: {segment['audience_size']:,} recipients", flush=True)
            before = stack["runner"].counts()
            posted_at, started = utcnow(), time.perf_counter()
            campaign = http.post("/api/campaigns", json={"name": "Bench", "segment_id": segment["id"],
                                                         "message": "Hi {{name}}, 20% off this weekend!"}).json()
            campaign_id = ObjectId(campaign["id"])
            fanned_out = wait_for(lambda: db.campaigns.find_one({"_id": campaign_id})["fanout"]["done"], 3600,
                                  "the fan-out")
            print(f"  fan-out done (every log QUEUED, every send enqueued): {fanned_out - started:.1f} s", flush=True)
            probe = ReceiptProbe(stack["url"], stack["env"]["RECEIPT_URL"])
            with probe:
                completed = None if args.fan_out_only else wait_for(
                    lambda: db.campaigns.find_one({"_id": campaign_id})["status"] == "COMPLETED", 7200, "completion")
            stats = db.campaigns.find_one({"_id": campaign_id})["stats"]
            last_sent = db[LOGS].find_one({"campaign_id": campaign_id, "sent_at": {"$ne": None}}, {"sent_at": 1},
                                          sort=[("sent_at", -1)]) if args.counts_out else None
        # The probe's own requests are not the campaign's.
        counts = _counts.leave_out(_counts.leave_out(_counts.settled_counts(stack["runner"], before),
                                                     "ReceiptsFunction", len(probe.latencies[RECEIPT])),
                                   "MetaFunction", len(probe.latencies[BASELINE]))
        # Named after the stack's database, so that a run on an existing server (--mongo-uri) drops it with that.
        baseline = raw_logs(client, f"{stack['env']['MONGO_DB']}_raw_logs", args.recipients)
    fan_out_seconds = fanned_out - started
    print(f"  {'fan-out through the system (POST -> all logs + sends queued)':<62} {fan_out_seconds:>7.1f} s")
    print(f"  {'baseline: raw insert_many of the same logs, same server':<62} {baseline:>7.1f} s")
    print(f"  ratio fan-out / raw insert: {fan_out_seconds / baseline:.2f}")
    rows = [Row("fan-out", f"{args.recipients:,} recipients: POST -> logs + sends queued", fan_out_seconds, "s",
                baseline, "raw insert_many of the same logs")]
    if completed is None:
        print("  counted from the POST until the runner was idle after the fan-out (sends under way by then are in)")
        _counts.print_per_thousand({"to fan-out": (counts, args.recipients)})
        return rows
    print(f"  POST -> COMPLETED with the mock vendor: {completed - started:.1f} s "
          f"({stats['sent']:,} sent, {stats['failed']:,} failed, {args.recipients / (completed - started):,.0f} "
          f"recipients/s{f'; schedules {args.time_scale:g}x faster' if args.time_scale != 1 else ''})")
    receipt_p50, baseline_p50 = probe.p50s()
    print(f"  during the campaign: receipt URL p50 {receipt_p50:.1f} ms, {BASELINE} p50 {baseline_p50:.1f} ms "
          f"(ratio {receipt_p50 / baseline_p50:.2f}, {len(probe.latencies[RECEIPT])} of each)")
    _counts.print_per_thousand({"mock vendor": (counts, args.recipients)})
    if args.counts_out:
        send_seconds = (last_sent["sent_at"] - posted_at).total_seconds() if last_sent else completed - started
        _counts.write(args.counts_out, {"mock": _counts.record(args.recipients, completed - started, send_seconds,
                                                               counts)})
    return [*rows, Row("fan-out", f"{args.recipients:,} recipients: POST -> COMPLETED", completed - started, "s",
                       baseline, "raw insert_many of the same logs"),
            Row("fan-out", "receipt URL p50 during that campaign", receipt_p50, "ms", baseline_p50,
                f"{BASELINE} p50, same moments")]



# --channel ses: the same e-mail campaign through each channel, each on its own local stack.

MOCK_RECIPIENTS = 100_000
# Consumers per queue: more make SecantusDB's transactions wait on each other (they run one statement at a time).
CONSUMERS = 2
SES_RECIPIENTS = 20_000
SANDBOX_RECIPIENTS = 300
PAUSE_RECIPIENTS = 10_000
SANDBOX_PER_SECOND = 1.0
SUPPRESSED_EVERY = 20  # every 20th address is on the suppression list: 5 %
# What the send function checks at once: a send message's crm.channels.BATCH logs, or the channel's checked_every
# (SES with a rate limit checks about every second; with none, as here, every 100 like the mock vendor).
CONSENT_BATCH = 100
# The mock vendor as in the mock fan-out above: no rate limit, immediate receipts, a patient timeout.
MOCK_ENV = {"VENDOR_MAX_PER_SECOND": "0", "MOCK_VENDOR_DELAY_SECONDS": "0", "VENDOR_TIMEOUT_SECONDS": "30"}
# moto's SES, no account rate locally (0: the rate limiter never waits); a 10 s answer time (the default 5 s
# records a slow answer from the busy moto as an unconfirmed send), which keeps a batch inside its 30 s budget.
SES_ENV = {"CHANNEL": "ses", "SES_MAX_PER_SECOND": "0", "VENDOR_TIMEOUT_SECONDS": "10"}
# Every message delivered: no bounce, complaint, open or click (SES's Send and Delivery events only).
SES_SHARES = Shares(bounce=0.0, complaint=0.0, open=0.0, click=0.0)
SEND_INVOCATION = re.compile(r"CampaignSendQueue: \d+ message\(s\) -> CampaignSendFunction (\d+) ms")


class SesAnswers:
    """SES's side of the e-mail campaign, through offline.ses_feedback: what moto's SES has accepted is read from its
    /moto-api/data.json (every 10 s, sooner when nothing is left to answer; only new messages are parsed) and handed
    to ses_feedback.feedback, which puts each message's events (Send, Delivery) on the delivery-event queue.

    moto's SQS takes longer for each message the more its queue holds (every send and receive walks the queue), so
    events go out in small steps while the queue holds fewer than MAX_BACKLOG: a message waiting here rather than in
    the queue reaches the consumer no later, the consumer being busy either way. A message whose log does not name it
    yet (its batch is still being sent) waits for a later step; one no log names for long (an unconfirmed send,
    matched by its link) is offered a few times, then left."""

    READ_EVERY = 10.0
    MAX_BACKLOG = 200  # events in the delivery-event queue (20 of its batches); a message makes two (SES_SHARES)
    UNCONFIRMED_AFTER = 90.0  # s; a send call takes at most 30 s (crm.channels.ses.CALL_BUDGET_SECONDS)
    OFFERS = 3

    def __init__(self, db, sqs, queue_url: str, ses_url: str, configuration_set: str):
        self.db, self.sqs, self.queue_url, self.configuration_set = db, sqs, queue_url, configuration_set
        self.data_url = f"{ses_url.rstrip('/')}/moto-api/data.json"
        self.waiting: dict[str, SentMail] = {}
        self.offers: Counter = Counter()
        self.unnamed_since: dict[str, float] = {}
        self.done: set[str] = set()
        self.counts: Counter = Counter()
        self.last_read = -self.READ_EVERY
        self.reads, self.read_seconds, self.steps, self.step_seconds, self.held = 0, 0.0, 0, 0.0, 0

    def step(self) -> None:
        if time.perf_counter() - self.last_read >= (self.READ_EVERY if self.waiting else 3.0):
            self._read()
        if not self.waiting:
            return
        started = time.perf_counter()
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        room = self.MAX_BACKLOG - sum(int(value) for value in attributes.values())
        if room < self.MAX_BACKLOG // 2:
            self.held += 1
            return
        ids, now = list(self.waiting), time.perf_counter()
        named = {log["vendor_message_id"] for start in range(0, len(ids), 500)
                 for log in self.db[LOGS].find({"vendor_message_id": {"$in": ids[start:start + 500]}},
                                               {"vendor_message_id": 1})}
        for i in ids:
            if i not in named:
                self.unnamed_since.setdefault(i, now)
        # Unnamed for longer than a send call and its recording take: a send whose answer was lost.
        lost = [i for i in ids if i not in named and now - self.unnamed_since[i] > self.UNCONFIRMED_AFTER]
        offered = [self.waiting[i] for i in [*lost, *(i for i in ids if i in named)][:room // 2]]
        if offered:
            self.counts.update(feedback(self.db, self.sqs, self.queue_url, offered, SES_SHARES,
                                        self.configuration_set))
        for mail in offered:
            self.offers[mail.message_id] += 1
            if mail.message_id in named or self.offers[mail.message_id] >= self.OFFERS:
                self.done.add(mail.message_id)
                del self.waiting[mail.message_id]
        self.steps, self.step_seconds = self.steps + 1, self.step_seconds + time.perf_counter() - started

    def _read(self) -> None:
        started = time.perf_counter()
        reply = httpx.get(self.data_url, timeout=300)
        reply.raise_for_status()
        for item in reply.json().get("ses", {}).get("RawMessage", []):
            if item["id"] not in self.done and item["id"] not in self.waiting:
                self.waiting[item["id"]] = SentMail.from_moto(item)
        self.last_read = time.perf_counter()
        self.reads, self.read_seconds = self.reads + 1, self.read_seconds + self.last_read - started

@dataclass(frozen=True)
class ChannelRun:
    channel: str
    recipients: int
    completed: float  # POST -> COMPLETED, s
    send_phase: float  # POST -> the last message handed to the channel (its log's sent_at), s
    handed: int  # messages the channel took (their log has its message id)
    stats: dict
    consent_seconds: float  # reasons_not_to_send over every log of the campaign, batches of 100, after it
    consent_batches: int
    consent_reasons: int  # how many logs it gave a reason not to send (the suppressed: the SKIPPED)
    send_busy: float  # the send function's invocations summed (runner log), s
    answers: SesAnswers | None
    counts: dict  # offline.counting, POST -> COMPLETED

    @property
    def sends_per_second(self) -> float:
        return self.handed / self.send_phase

    @property
    def consent_share(self) -> float:
        return self.consent_seconds / self.send_phase


def time_consent_checks(db, campaign_id: ObjectId) -> tuple[float, int, int]:
    """The consent check as the send function makes it, over every log of the campaign in batches of 100 against
    the same database: total seconds, batches, and how many logs it found a reason not to send."""
    ids = [d["_id"] for d in db[LOGS].find({"campaign_id": campaign_id}, {"_id": 1}).sort("_id", 1)]
    reasons_not_to_send(db, ids[:CONSENT_BATCH])  # one unmeasured batch: connections and caches warm
    total, found = 0.0, 0
    for start in range(0, len(ids), CONSENT_BATCH):
        started = time.perf_counter()
        found += len(reasons_not_to_send(db, ids[start:start + CONSENT_BATCH]))
        total += time.perf_counter() - started
    return total, -(-len(ids) // CONSENT_BATCH), found


def send_function_seconds(log_path: Path) -> float:
    """The send function's time: each of its invocations' duration as the runner logs it, summed."""
    return sum(int(m.group(1)) for m in SEND_INVOCATION.finditer(log_path.read_text())) / 1000


def campaign_through(channel: str, recipients: int, mongo_uri: str | None = None,
                     ses_per_second: float | None = None, suppressed_every: int = SUPPRESSED_EVERY) -> ChannelRun:
    """The e-mail campaign on a fresh local stack sending through this channel, until it is COMPLETED; ses_per_second:
    the SES account's rate (none by default); suppressed_every 0: no address on the suppression list."""
    log_path = ROOT / ".local" / f"bench-fanout-{channel}-runner.log"
    # SES on a moto server of its own: moto keeps every SQS message it was ever sent, and its data.json (where the
    # sent mail is read) would list them all, serialised on the server the runner's queues live on.
    ses_server = services.SqsServer() if channel == "ses" else None
    extra_env = {**SES_ENV, "SES_ENDPOINT_URL": ses_server.url} if ses_server else MOCK_ENV
    if ses_per_second is not None:
        extra_env["SES_MAX_PER_SECOND"] = str(ses_per_second)
    try:
        return _campaign_through(channel, recipients, extra_env, log_path, mongo_uri, suppressed_every)
    finally:
        if ses_server:
            ses_server.stop()


def _campaign_through(channel: str, recipients: int, extra_env: dict[str, str], log_path: Path,
                      mongo_uri: str | None, suppressed_every: int) -> ChannelRun:
    with local_stack(extra_env=extra_env, log_path=log_path, mongo_uri=mongo_uri, count=True) as stack:
        client = MongoClient(stack["mongo_uri"], tz_aware=True)
        db = client[stack["env"]["MONGO_DB"]]
        seed_customers(db, recipients)
        ensure_indexes(db)
        for i in range(0, recipients if suppressed_every else 0, suppressed_every or 1):
            suppressions.add(db[SUPPRESSIONS], f"c{i:07d}@example.com", "manual")
        answers = SesAnswers(db, stack["sqs"], stack["queues"][DELIVERY_QUEUE].url, stack["env"]["SES_ENDPOINT_URL"],
                             stack["env"]["SES_CONFIGURATION_SET"]) if channel == "ses" else None
        with httpx.Client(base_url=stack["url"], timeout=120) as http:
            segment = everyone_segment(http)
            before = stack["runner"].counts()
            posted_at, started = utcnow(), time.perf_counter()
            reply = http.post("/api/campaigns", json={
                "name": "Bench e-mail", "segment_id": segment["id"], "subject": "20% off, {{name}}",
                "message": "Hi {{name}}, 20% off this weekend!\n\nUnsubscribe: {{unsubscribe_url}}"})
            reply.raise_for_status()
            campaign_id = ObjectId(reply.json()["id"])
            while db.campaigns.find_one({"_id": campaign_id}, {"status": 1})["status"] != COMPLETED:
                if time.perf_counter() - started > 7200:
                    raise SystemExit(f"the {channel} campaign was not COMPLETED within 7200 s (see {log_path})")
                if answers:
                    answers.step()
                time.sleep(0.5)
            completed = time.perf_counter() - started
        counts = _counts.settled_counts(stack["runner"], before)
        if answers:
            # SES's events reach the queue through the EventBridge rule: one SendMessage per event, billed as SQS's.
            counts["eventbridge"] = {"aws.sqs.SendMessage": answers.counts["events"],
                                     "sqs_billed": answers.counts["events"]}
        stats = db.campaigns.find_one({"_id": campaign_id})["stats"]
        logs = list(db[LOGS].find({"campaign_id": campaign_id}, {"sent_at": 1, "vendor_message_id": 1}))
        last_sent = max(log["sent_at"] for log in logs if log.get("sent_at"))
        consent_seconds, batches, reasons = time_consent_checks(db, campaign_id)
        client.close()
    return ChannelRun(channel, recipients, completed, (last_sent - posted_at).total_seconds(),
                      sum(1 for log in logs if log.get("vendor_message_id")), stats, consent_seconds, batches, reasons,
                      send_function_seconds(log_path), answers, counts)


def run_sandbox(recipients: int, mongo_uri: str | None = None) -> list[Row]:
    """SES as a new account has it (the sandbox: 1 message a second): every recipient sent, none failed."""
    print(f"SES at {SANDBOX_PER_SECOND:g} message/s (the sandbox): an e-mail campaign to {recipients:,} recipients",
          flush=True)
    run = campaign_through("ses", recipients, mongo_uri, SANDBOX_PER_SECOND, suppressed_every=0)
    print(f"  COMPLETED in {run.completed:.1f} s: {run.stats['sent']:,} sent, {run.stats['failed']:,} failed, "
          f"{run.stats['skipped']:,} skipped; {run.sends_per_second:.2f} sends/s")
    return [Row("fan-out", f"SES sandbox ({SANDBOX_PER_SECOND:g}/s): recipients sent", run.stats["sent"], "sent",
                recipients, f"recipients ({run.stats['failed']:,} failed)")]


def run_by_channel(recipients: int, mongo_uri: str | None = None, counts_out: Path | None = None) -> list[Row]:
    suppressed = len(range(0, recipients, SUPPRESSED_EVERY))
    print(f"fan-out by channel: {recipients:,} recipients of an e-mail campaign, {suppressed:,} of them "
          f"({suppressed / recipients:.0%}) on the suppression list; each channel on its own local stack", flush=True)
    runs = {}
    for channel, name in (("mock", "mock vendor"), ("ses", "SES (moto)")):
        print(f"  {name} ...", flush=True)
        runs[channel] = campaign_through(channel, recipients, mongo_uri)
        done = runs[channel]
        print(f"  {name}: COMPLETED in {done.completed:.1f} s ({done.stats['sent']:,} sent, "
              f"{done.stats['failed']:,} failed, {done.stats['skipped']:,} skipped = "
              f"{done.stats['skipped'] / recipients:.1%})", flush=True)
    mock, ses = runs["mock"], runs["ses"]

    def line(label: str, a: float, b: float, spec: str = ",.1f", ratio: bool = True) -> None:
        print(f"  {label:<56} {a:>12{spec}} {b:>12{spec}} {b / a if ratio and a else float('nan'):>10.2f}")

    print(f"  {'':<56} {'mock vendor':>12} {'SES (moto)':>12} {'SES / mock':>10}")
    line("POST -> COMPLETED, s", mock.completed, ses.completed)
    line("POST -> last message handed to the channel, s", mock.send_phase, ses.send_phase)
    line("messages handed to the channel", mock.handed, ses.handed, ",.0f")
    line("sends per second (handed / POST -> last handed)", mock.sends_per_second, ses.sends_per_second)
    line("SKIPPED (on the suppression list)", mock.stats["skipped"], ses.stats["skipped"], ",.0f")
    line("SENT", mock.stats["sent"], ses.stats["sent"], ",.0f")
    line("FAILED", mock.stats["failed"], ses.stats["failed"], ",.0f")
    line("send function's invocations summed (runner log), s", mock.send_busy, ses.send_busy)
    line(f"consent checks: {mock.consent_batches:,} x reasons_not_to_send(100 logs), s", mock.consent_seconds,
         ses.consent_seconds, ",.2f")
    line("  ... of POST -> last handed, %", 100 * mock.consent_share, 100 * ses.consent_share, ",.2f")
    line("  ... of the send function's time, %", 100 * mock.consent_seconds / mock.send_busy,
         100 * ses.consent_seconds / ses.send_busy, ",.2f")
    answers = ses.answers
    print(f"  SES's events: {answers.counts['answered']:,} messages answered with {answers.counts['events']:,} events "
          f"(Send + Delivery; no bounce or complaint) by offline.ses_feedback.feedback, {ses.stats['delivered']:,} "
          f"delivered;\n  moto's sent mail read {answers.reads} times ({answers.read_seconds:.1f} s), events put in "
          f"{answers.steps} steps ({answers.step_seconds:.1f} s), {answers.held} times held back while the queue "
          f"was full")
    for channel in (mock, ses):
        if channel.consent_reasons != channel.stats["skipped"]:
            print(f"  note: on {channel.channel}, the consent check found {channel.consent_reasons:,} logs not to "
                  f"send, the campaign SKIPPED {channel.stats['skipped']:,}")
    print("  The consent checks' time is measured after each campaign, on its own stack (the same database and "
          "logs, batches of\n  100 as the send function makes them, a quiet machine): the runner's functions "
          "run in other processes and are\n  not timed inside. Under the campaign's load each read waits "
          "longer, so the shares are a lower bound.")
    _counts.print_per_thousand({"mock vendor": (mock.counts, recipients), "SES (moto)": (ses.counts, recipients)})
    if counts_out:
        _counts.write(counts_out, {run.channel: _counts.record(recipients, run.completed, run.send_phase, run.counts)
                                   for run in (mock, ses)})
    label = f"{recipients:,} e-mails, {suppressed / recipients:.0%} suppressed"
    rows = [Row("fan-out", f"SES: POST -> COMPLETED ({recipients:,})", ses.completed, "s", mock.completed,
                f"the same campaign on the mock vendor ({label})"),
            Row("fan-out", "SES: sends/s to POST -> last handed", ses.sends_per_second, "sends/s",
                mock.sends_per_second, "the same on the mock vendor"),
            Row("fan-out", "SES: consent checks / send phase", 100 * ses.consent_share, "%",
                100 * mock.consent_share, "the same on the mock vendor")]
    print()
    print_table(rows)
    return rows


if __name__ == "__main__":
    run()
