"""The soak: the whole system under every fault at once, then the invariants of API.md checked once it is quiet.

A client that retries like a real one (same Idempotency-Key after a 502, 503, 504 or a lost connection) ingests
customers, re-ingests some of them with other fields and an older last_active, posts orders (some twice), and
creates campaigns while new customers arrive and spends change. The runner meanwhile delivers SQS messages twice,
kills consumers and API invocations, and its mock vendor loses, repeats and delays receipts and fails sends.

    python -m bench.soak [--customers 1000] [--campaigns 4] [--faults ...] [--seed N] [--time-scale 30]
"""
from __future__ import annotations

import argparse
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
from bson import ObjectId
from pymongo import MongoClient

from bench._stack import local_stack
from offline.faults import Faults

FAULTS = ("sqs_dup=0.3,sqs_kill=0.05,api_kill=0.05,receipt_drop=0.1,receipt_dup=0.2,receipt_late=0.05,"
          "vendor_error=0.05")
# The template's smallest values (defaults: 15, 60 and 5 minutes): what the faults leave behind is settled within
# minutes. A fan-out stall must outlast the fan-out function's own timeout (60 s), or running jobs get copies.
PARAMETERS = {"ReceiptTimeoutSeconds": "60", "SendTimeoutSeconds": "60", "FanoutStallSeconds": "90"}
RETRIED = {502, 503, 504}
POISON_EMAIL = "nobody-ever@example.com"
WORK_QUEUES = ("CustomerIngestQueue", "OrderIngestQueue", "CampaignFanoutQueue", "CampaignSendQueue",
               "VendorReceiptQueue")


@dataclass
class Report:
    faults: dict[str, int] = field(default_factory=dict)
    checks: int = 0
    violations: list[str] = field(default_factory=list)
    client_retries: int = 0
    seconds_to_quiet: float = 0.0
    seconds_total: float = 0.0

    def check(self, ok: bool, what: str) -> None:
        self.checks += 1
        if not ok and len(self.violations) < 50:
            self.violations.append(what)


class Client:
    """Retries like a real client: the same request, the same Idempotency-Key, until it gets an answer."""

    def __init__(self, url: str, report: Report):
        self.http = httpx.Client(base_url=url, timeout=30)
        self.report = report
        token = self.call("POST", "/api/auth/dev-token", {"email": "soak@example.com"}).json()["token"]
        self.http.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, body: Any = None, key: str | None = None, ok=(200, 201, 202)
             ) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        for attempt in range(40):
            try:
                reply = self.http.request(method, path, json=body, headers=headers)
            except httpx.TransportError:
                reply = None
            in_progress = reply is not None and reply.status_code == 409 and "in progress" in reply.text
            if reply is not None and reply.status_code not in RETRIED and not in_progress:
                assert reply.status_code in ok, f"{method} {path}: {reply.status_code} {reply.text[:300]}"
                return reply
            self.report.client_retries += 1
            time.sleep(min(0.2 * 2 ** attempt, 3))
        raise AssertionError(f"{method} {path} never answered")


@dataclass
class Expected:
    """What the client knows it asked for, to check the database against."""
    newest: dict[str, dict[str, Any]] = field(default_factory=dict)  # email -> field -> newest value
    latest_active: dict[str, datetime] = field(default_factory=dict)
    orders: dict[str, list[tuple[str, float, datetime]]] = field(default_factory=dict)  # email -> distinct orders
    campaign_keys: dict[str, str] = field(default_factory=dict)  # Idempotency-Key -> campaign name


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _customer(rng: random.Random, i: int, generation: int, now: datetime) -> dict[str, Any]:
    customer: dict[str, Any] = {"name": f"Person {i} v{generation}", "email": f"p{i:05d}@example.com"}
    if rng.random() < 0.8:
        customer["spend"] = round(rng.uniform(0, 5000), 2)
    if rng.random() < 0.8:
        customer["visits"] = rng.randrange(0, 40)
    if rng.random() < 0.7:
        customer["last_active"] = _iso(now - timedelta(days=rng.randrange(0, 400)))
    if rng.random() < 0.3:
        customer["phone"] = f"+1 555 {rng.randrange(1000, 9999)}"
    return customer


def ingest(client: Client, expected: Expected, customers: list[dict[str, Any]]) -> None:
    for start in range(0, len(customers), 100):
        batch = customers[start:start + 100]
        client.call("POST", "/api/customers", {"customers": batch}, key=f"ingest-{uuid.uuid4().hex}")
        for customer in batch:  # accepted in order: the later ingest is the newer one
            fields = expected.newest.setdefault(customer["email"], {})
            fields.update({k: v for k, v in customer.items() if k in ("name", "phone", "spend", "visits")})
            if "last_active" in customer:
                moment = datetime.fromisoformat(customer["last_active"].replace("Z", "+00:00"))
                expected.latest_active[customer["email"]] = max(expected.latest_active.get(customer["email"], moment),
                                                                moment)


def post_orders(client: Client, rng: random.Random, expected: Expected, emails: list[str], count: int,
                now: datetime) -> None:
    orders = []
    for i in range(count):
        email = rng.choice(emails)
        date = now - timedelta(days=rng.randrange(0, 300))
        amount = round(rng.uniform(1, 300), 2)
        orders.append({"order_id": f"o-{i:05d}", "customer_email": email, "amount": amount, "date": _iso(date),
                       "items": [{"sku": f"SKU-{i % 7}", "name": "Thing", "qty": 1, "price": amount}]})
        expected.orders.setdefault(email, []).append((f"o-{i:05d}", amount, date))
    twice = orders + rng.sample(orders, len(orders) // 5)  # a shop that sends some orders again
    for start in range(0, len(twice), 50):
        client.call("POST", "/api/orders", {"orders": twice[start:start + 50]}, key=f"orders-{uuid.uuid4().hex}")
    client.call("POST", "/api/orders", {"order_id": "o-poison", "customer_email": POISON_EMAIL, "amount": 1,
                                        "items": [{"sku": "X", "name": "X", "qty": 1, "price": 1}]})


def create_campaigns(client: Client, rng: random.Random, expected: Expected, count: int, total: int) -> list[str]:
    ids = []
    for n in range(count):
        rules = {"field": "spend", "op": ">=", "value": rng.choice([0, 500, 1500])}
        segment = client.call("POST", "/api/segments", {"name": f"Soak {n}", "rules": rules}).json()
        key = f"campaign-{n}-{uuid.uuid4().hex[:8]}"
        body = {"name": f"Soak campaign {n}", "segment_id": segment["id"], "message": "Hi {{first_name}}"}
        ids.append(client.call("POST", "/api/campaigns", body, key=key).json()["id"])
        # Sent again with the same key, as a client that lost the first reply would.
        assert client.call("POST", "/api/campaigns", body, key=key).json()["id"] == ids[-1]
        expected.campaign_keys[key] = body["name"]
        # The audience changes while the fan-out runs: newcomers (never recipients) and spends moved.
        newcomers = [{"name": f"Newcomer {n}-{i}", "email": f"new{n}-{i}@example.com", "spend": 4000.0}
                     for i in range(5)]
        movers = [_customer(rng, rng.randrange(total), 99, datetime.now(timezone.utc)) for _ in range(10)]
        ingest(client, expected, newcomers + movers)
    return ids


def wait_until_quiet(client: Client, sqs, queues, campaign_ids: list[str], applied, timeout: float) -> None:
    """Every campaign COMPLETED, every order applied, and no message left in a work queue, for a few seconds."""
    deadline = time.monotonic() + timeout
    quiet_since = None
    while time.monotonic() < deadline:
        statuses = [client.call("GET", f"/api/campaigns/{cid}?limit=1").json()["status"] for cid in campaign_ids]
        depth = 0
        for name in WORK_QUEUES:
            attributes = sqs.get_queue_attributes(QueueUrl=queues[name].url, AttributeNames=[
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed"])["Attributes"]
            # The poison order keeps coming back until it is dead-lettered: it is not work left.
            depth += sum(int(v) for v in attributes.values()) if name != "OrderIngestQueue" else 0
        if all(s == "COMPLETED" for s in statuses) and depth == 0 and applied():
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 5:  # late receipts and redeliveries have had their turn
                return
        else:
            quiet_since = None
        time.sleep(1)
    raise AssertionError(f"not quiet within {timeout:.0f} s: campaigns {statuses}, {depth} messages in queues")


def check(db, expected: Expected, campaign_ids: list[str], dlq_bodies: list[tuple[str, str]], report: Report) -> None:
    customers = {c["email"]: c for c in db.customers.find()}
    for email, fields in expected.newest.items():
        doc = customers.get(email)
        report.check(doc is not None, f"{email}: acknowledged but never written")
        if doc is None:
            continue
        for name in ("name", "phone"):
            if name in fields:
                report.check(doc.get(name) == fields[name], f"{email}: {name} {doc.get(name)!r} != {fields[name]!r}")
        orders = expected.orders.get(email, [])
        for name, index in (("spend", 1), ("visits", None)):
            from_orders = sum(o[1] for o in orders) if index else len(orders)
            want = fields.get(name, 0) + from_orders
            report.check(abs(doc[name] - want) < 1e-6, f"{email}: {name} {doc[name]} != ingested + orders {want}")
        latest = max([expected.latest_active.get(email, doc["created_at"])] + [o[2] for o in orders])
        report.check(doc["last_active"] >= latest - timedelta(milliseconds=1),
                     f"{email}: last_active {doc['last_active']} moved back before {latest}")
    report.check(db.orders.count_documents({}) == sum(len(v) for v in expected.orders.values()),
                 "each distinct order recorded once")
    names = [c["name"] for c in db.campaigns.find({}, {"name": 1})]
    report.check(sorted(names) == sorted(expected.campaign_keys.values()), f"one campaign per key: {sorted(names)}")
    for cid in campaign_ids:
        campaign = db.campaigns.find_one({"_id": ObjectId(cid)})
        logs = list(db.communication_logs.find({"campaign_id": campaign["_id"]}))
        stats = campaign["stats"]
        report.check(campaign["status"] == "COMPLETED", f"{cid} is {campaign['status']}")
        report.check(stats["audience"] == len(logs), f"{cid}: audience {stats['audience']} != {len(logs)} logs")
        report.check(len({log["customer_id"] for log in logs}) == len(logs), f"{cid}: a recipient has two logs")
        for status in ("QUEUED", "SENT", "FAILED"):
            count = sum(1 for log in logs if log["status"] == status)
            report.check(stats[status.lower()] == count, f"{cid}: {status.lower()} {stats[status.lower()]} != {count}")
            report.check(stats[status.lower()] >= 0, f"{cid}: {status.lower()} is negative")
        created = {c["_id"]: c["created_at"] for c in db.customers.find(
            {"_id": {"$in": [log["customer_id"] for log in logs]}}, {"created_at": 1})}
        late = [log for log in logs if created.get(log["customer_id"], campaign["created_at"]) > campaign["created_at"]]
        report.check(not late, f"{cid}: {len(late)} log(s) for customers created after the campaign")
        accepted = {m["_id"]: m for m in db.vendor_messages.find({"_id": {"$in": [str(log["_id"]) for log in logs]}})}
        for log in logs:
            message = accepted.get(str(log["_id"]))
            if log.get("vendor_message_id"):
                report.check(message is not None and message["vendor_message_id"] == log["vendor_message_id"],
                             f"{log['_id']}: sent as a message the vendor does not know")
    for queue, body in dlq_bodies:
        report.check("o-poison" in body, f"{queue} holds a message that is not the poison order: {body[:300]}")


def run(customers: int = 1000, campaigns: int = 4, faults: str = FAULTS, seed: int | None = None,
        time_scale: float = 30.0, quiet_timeout: float = 600.0, out=print,
        parameters: dict[str, str] | None = None) -> Report:
    """parameters: over PARAMETERS, as `sam deploy --parameter-overrides` would (the runner does not hold them to the
    template's MinValue)."""
    report = Report()
    started = time.monotonic()
    rng = random.Random(seed)
    fault_mix = Faults.parse(faults, seed)
    with local_stack(parameters={**PARAMETERS, **(parameters or {})}, time_scale=time_scale,
                     faults=fault_mix) as stack:
        out(f"soak: {customers:,} customers, {campaigns} campaigns, faults {faults}, seed {fault_mix.seed}, "
            f"time scale {time_scale:g}")
        client = Client(stack["url"], report)
        expected = Expected()
        now = datetime.now(timezone.utc)
        ingest(client, expected, [_customer(rng, i, 1, now) for i in range(customers)])
        again = rng.sample(range(customers), customers // 4)
        ingest(client, expected, [_customer(rng, i, 2, now) for i in again])
        post_orders(client, rng, expected, sorted(expected.newest), customers // 2, now)
        time.sleep(2)  # let some ingests land first, so audiences are not empty
        campaign_ids = create_campaigns(client, rng, expected, campaigns, customers)
        driven = time.monotonic()
        db = MongoClient(stack["mongo_uri"], tz_aware=True)[stack["env"]["MONGO_DB"]]
        distinct_orders = sum(len(v) for v in expected.orders.values())
        wait_until_quiet(client, stack["sqs"], stack["queues"], campaign_ids,
                         lambda: db.orders.count_documents({}) >= distinct_orders, quiet_timeout)
        report.seconds_to_quiet = time.monotonic() - driven
        report.faults = httpx.get(f"{stack['url']}/_offline/faults").json()["injected"]
        dlq_bodies = [(name, m["Body"]) for name, queue in stack["queues"].items() if name.endswith("DLQ")
                      for m in _drain(stack["sqs"], queue.url)]
        check(db, expected, campaign_ids, dlq_bodies, report)
    report.seconds_total = time.monotonic() - started
    return report


def _drain(sqs, url: str) -> list[dict]:
    found = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages"):
        found.extend(batch)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--campaigns", type=int, default=4)
    parser.add_argument("--faults", default=FAULTS)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--time-scale", type=float, default=30.0)
    args = parser.parse_args()
    report = run(args.customers, args.campaigns, args.faults, args.seed, args.time_scale)
    print("  faults injected: " + ", ".join(f"{k} {v}" for k, v in report.faults.items()))
    print(f"  client retries: {report.client_retries}")
    print(f"  invariants checked: {report.checks:,}, violated: {len(report.violations)}")
    for violation in report.violations:
        print(f"    {violation}")
    print(f"  time to quiet after the last request: {report.seconds_to_quiet:.1f} s; "
          f"whole run {report.seconds_total:.1f} s")
    raise SystemExit(1 if report.violations else 0)


if __name__ == "__main__":
    main()
