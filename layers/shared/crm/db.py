"""MongoDB access: one client per container, indexes declared in one place."""
from __future__ import annotations

import threading
from typing import Any, Iterator

import pymongo
from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel, MongoClient
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    ConnectionFailure,
    ExecutionTimeout,
    NetworkTimeout,
    ServerSelectionTimeoutError,
    WaitQueueTimeoutError,
)

from crm.config import Settings, get_settings
from crm.errors import DependencyUnavailable, NotFound, translate_as

CUSTOMERS = "customers"
ORDERS = "orders"
IDEMPOTENCY_KEYS = "idempotency_keys"
OAUTH_STATES = "oauth_states"
SEGMENTS = "segments"
CAMPAIGNS = "campaigns"
LOGS = "communication_logs"
VENDOR_MESSAGES = "vendor_messages"
MIGRATIONS = "migrations"
USERS = "users"
API_KEYS = "api_keys"
AUDIT = "audit_log"
ATTRIBUTE_REGISTRY = "attribute_registry"
SUPPRESSIONS = "suppressions"
# Erasures whose logs are still being blanked (by customer id; removed when done).
ERASURES = "erasures"
# A channel's account rate, shared by its senders (crm.channels.rate).
CHANNEL_RATES = "channel_rates"
# Jobs of which one runs at a time (the scheduled roll-up).
LEASES = "leases"
DUPLICATE_KEY = 11000
LAMBDA_MAX_TIMEOUT_SECONDS = 900
MIN_DB_SECONDS = 0.1
# The most ids one `$in` names: a server may match each document against the list one by one (the local server
# does), so a list of n ids costs n x n; a write of 1,000 ids in runs of 100 costs a tenth of one of 1,000.
IN_CHUNK = 100

INDEXES: dict[str, list[IndexModel]] = {
    CUSTOMERS: [
        IndexModel([("email", ASCENDING)], unique=True, name="email_unique"),
        IndexModel([("name_key", ASCENDING)], name="name_key"),
        IndexModel([("spend", ASCENDING)], name="spend"),
        IndexModel([("visits", ASCENDING)], name="visits"),
        IndexModel([("last_active", ASCENDING)], name="last_active"),
        IndexModel([("created_at", ASCENDING)], name="created_at"),
        # Rules v2: multikey indexes on the customer's tags and bought SKUs.
        IndexModel([("tags", ASCENDING)], name="tags"),
        IndexModel([("skus", ASCENDING)], name="skus"),
        # Any attribute a rule names (keys are the brand's own, so one wildcard index serves them all).
        IndexModel([("attributes.$**", ASCENDING)], name="attributes_wildcard"),
        # Rules v3 (crm.rules.windows): multikey indexes on the activity a behaviour rule looks for first, a range of
        # days in a window or a SKU, and the campaign of a message. Not (days, running count): the local server keys
        # a compound index over one array by every pair of its elements (a customer of 400 days took 9 s a write).
        IndexModel([("activity.orders.d", ASCENDING)], name="activity_order_days"),
        IndexModel([("activity.orders.skus", ASCENDING)], name="activity_order_skus"),
        IndexModel([("activity.messages.c", ASCENDING)], name="activity_message_campaigns"),
        IndexModel([("activity.messages.r", ASCENDING)], name="activity_message_sent_days"),
        IndexModel([("activity.messages.o", ASCENDING)], name="activity_message_opened_days"),
        IndexModel([("activity.messages.k", ASCENDING)], name="activity_message_clicked_days"),
    ],
    ORDERS: [
        IndexModel([("order_id", ASCENDING)], unique=True, name="order_id_unique"),
        IndexModel([("customer_id", ASCENDING), ("_id", DESCENDING)], name="customer_newest"),
        IndexModel([("date", ASCENDING)], name="date"),
        # Orders whose attribution waits for their message's outcome (crm.engagement.attribution); only those.
        IndexModel([("_id", ASCENDING)], name="attribution_pending",
                   partialFilterExpression={"attribution_pending": True}),
    ],
    IDEMPOTENCY_KEYS: [
        IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expires_at_ttl"),
    ],
    SEGMENTS: [
        IndexModel([("created_by", ASCENDING), ("_id", DESCENDING)], name="created_by_newest"),
    ],
    CAMPAIGNS: [
        IndexModel([("created_by", ASCENDING), ("_id", DESCENDING)], name="created_by_newest"),
        # The reconciler's look at campaigns not yet COMPLETED.
        IndexModel([("status", ASCENDING), ("fanout.updated_at", ASCENDING)], name="status_fanout_updated"),
        # Campaigns whose sweep has not finished (crm.services.sweep), for the reconciler; partial: only those.
        IndexModel([("sweep.updated_at", ASCENDING)], name="sweep_pending",
                   partialFilterExpression={"sweep.pending": True}),
    ],
    LOGS: [
        # One log per recipient, however often the fan-out runs.
        IndexModel([("campaign_id", ASCENDING), ("customer_id", ASCENDING)], unique=True, name="campaign_customer"),
        IndexModel([("campaign_id", ASCENDING), ("status", ASCENDING), ("_id", DESCENDING)], name="campaign_status"),
        IndexModel([("campaign_id", ASCENDING), ("_id", DESCENDING)], name="campaign_newest"),
        # What the reconciler looks for: logs still QUEUED past the time something should have happened to them.
        IndexModel([("status", ASCENDING), ("due_at", ASCENDING)], name="status_due"),
        # A person's logs, for erasure; a message's log, for the e-mail channel's events.
        IndexModel([("customer_id", ASCENDING)], name="customer"),
        IndexModel([("vendor_message_id", ASCENDING)], name="vendor_message_id"),
        # Logs whose change the campaign's counters do not hold yet (crm.services.delivery.PENDING), by campaign:
        # only those are in it, so it stays small however large the campaigns.
        IndexModel([("pending", ASCENDING), ("campaign_id", ASCENDING)], name="roll_up_pending",
                   partialFilterExpression={"pending": True}),
        # Logs a pause parked, found by the resume's sweep (crm.services.lifecycle.park); partial: only those.
        IndexModel([("campaign_id", ASCENDING), ("_id", ASCENDING)], name="campaign_parked",
                   partialFilterExpression={"parked": True}),
        # The frequency cap: the messages handed to a person lately.
        IndexModel([("customer_id", ASCENDING), ("sent_at", ASCENDING)], name="customer_sent_at"),
        # A person's place in control groups lately: their orders count for the control (crm.engagement.attribution).
        IndexModel([("customer_id", ASCENDING), ("created_at", ASCENDING)], name="customer_control",
                   partialFilterExpression={"reason": "control"}),
        # When a campaign's last message was handed over (an A/B test ends `minutes` after it).
        IndexModel([("campaign_id", ASCENDING), ("sent_at", DESCENDING)], name="campaign_sent_at"),
    ],
    SUPPRESSIONS: [
        IndexModel([("email_hash", ASCENDING)], unique=True, name="email_hash_unique"),
    ],
    VENDOR_MESSAGES: [
        IndexModel([("vendor_message_id", ASCENDING)], unique=True, name="vendor_message_id_unique"),
        IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expires_at_ttl"),
    ],
    OAUTH_STATES: [
        IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expires_at_ttl"),
    ],
    USERS: [
        IndexModel([("email", ASCENDING)], unique=True, name="email_unique"),
        # The last-admin check counts these.
        IndexModel([("role", ASCENDING), ("disabled", ASCENDING)], name="role_disabled"),
    ],
    API_KEYS: [
        # Every key-authenticated request finds its key by the hash of the secret it presents.
        IndexModel([("hash", ASCENDING)], unique=True, name="hash_unique"),
    ],
    AUDIT: [
        # A write retried after a lost reply records its entry once.
        IndexModel([("once", ASCENDING)], unique=True, sparse=True, name="once_unique"),
        IndexModel([("actor.id", ASCENDING), ("_id", DESCENDING)], name="actor_id_newest"),
        IndexModel([("actor.email", ASCENDING), ("_id", DESCENDING)], name="actor_email_newest"),
        IndexModel([("action", ASCENDING), ("_id", DESCENDING)], name="action_newest"),
        IndexModel([("at", DESCENDING)], name="at"),
        # The entries that carry someone's free text (an admin's reason for lifting a suppression), by what they
        # name: an erasure clears them (crm.consent.erasure). Partial: only those entries.
        IndexModel([("target.id", ASCENDING)], name="target_with_reason",
                   partialFilterExpression={"details.reason": {"$exists": True}}),
    ],
}

# A query past its request's deadline (pymongo.timeout) is a dependency too slow: 503 as well.
translate_as((ConnectionFailure, ServerSelectionTimeoutError, AutoReconnect, NetworkTimeout, ExecutionTimeout,
              WaitQueueTimeoutError), DependencyUnavailable)

_clients: dict[str, MongoClient] = {}
_lock = threading.Lock()


def get_client(settings: Settings | None = None) -> MongoClient:
    settings = settings or get_settings()
    uri = settings.secret("mongo_uri")
    with _lock:
        client = _clients.get(uri)
        if client is not None and not client.topology_description.server_descriptions():
            # Every member was taken out of the client's view of the replica set (a restarted server that first
            # answered as another set): it has no address left to look at, and would fail every call until the
            # container ends. A new client starts again from the URI's seeds.
            client.close()
            client = None
        if client is None:
            client = MongoClient(
                uri,
                tz_aware=True,
                serverSelectionTimeoutMS=settings.mongo_timeout_ms,
                connectTimeoutMS=settings.mongo_timeout_ms,
                socketTimeoutMS=settings.mongo_socket_timeout_ms,
                # A Lambda container handles one event at a time: a small pool is plenty and keeps
                # concurrency x pool size inside the cluster's connection limit.
                maxPoolSize=4,
                appname="mini-crm",
            )
            _clients[uri] = client
    return client


def get_db(settings: Settings | None = None) -> Database:
    """The database; its indexes exist already (crm.migration creates them at deploy, never a request)."""
    settings = settings or get_settings()
    return get_client(settings)[settings.mongo_db]


def ensure_indexes(db: Database) -> None:
    """Idempotent: creating an index that exists with the same options is a no-op."""
    for collection, indexes in INDEXES.items():
        db[collection].create_indexes(indexes)


def only_duplicates(exc: BulkWriteError) -> bool:
    """A bulk write refused only for documents that exist already (the unique index held)."""
    errors = exc.details.get("writeErrors", [])
    return bool(errors) and all(e.get("code") == DUPLICATE_KEY for e in errors)


def bulk_upsert(collection: Collection, ops: list) -> None:
    """Upserts in bulk, ordered=False. Two consumers inserting the same new key at once: the loser's upsert now finds
    the winner's document, so running it again turns it into an update."""
    try:
        collection.bulk_write(ops, ordered=False)
    except BulkWriteError as exc:
        if not only_duplicates(exc):
            raise
        collection.bulk_write([ops[e["index"]] for e in exc.details["writeErrors"]], ordered=False)


def in_chunks(items: list, size: int | None = None) -> Iterator[list]:
    """Runs of at most IN_CHUNK items, for the `$in` lists of bulk reads and writes."""
    size = size or IN_CHUNK
    for start in range(0, len(items), size):
        yield items[start:start + size]


def per_document(ids: list[Any], values: list[Any]) -> dict:
    """An update-pipeline expression whose value is each document's own: values[i] for the document ids[i]. One
    update of many documents, each with its own value, costs about half of one update per document."""
    return {"$arrayElemAt": [{"$literal": values}, {"$indexOfArray": [{"$literal": ids}, "$_id"]}]}


def literals(fields: dict[str, Any]) -> dict[str, dict]:
    """Constants for an update pipeline's $set: a string there that starts with '$' would be read as a field path."""
    return {name: {"$literal": value} for name, value in fields.items()}


def time_budget(remaining_seconds: float, margin_seconds: float) -> float:
    """Seconds an invocation's database work may take (for pymongo.timeout): what is left of the invocation
    (Lambda allows 15 minutes at most) less a margin to answer in; never nothing."""
    return max(MIN_DB_SECONDS, min(remaining_seconds, LAMBDA_MAX_TIMEOUT_SECONDS) - margin_seconds)


def find_by_id(collection: Collection, doc_id: str, what: str) -> dict:
    """The document with this 24-hex id, or NotFound naming what was looked for."""
    doc = collection.find_one({"_id": ObjectId(doc_id)})
    if doc is None:
        raise NotFound(f"No {what} {doc_id}")
    return doc


def ensure_reachable(database: Database, settings: Settings | None = None) -> None:
    """A database that cannot be reached is a 503 within MONGO_TIMEOUT_MS, not at the request's deadline (under
    pymongo.timeout, server selection would wait for all of it). Costs nothing while the server is known to be up."""
    if not database.client.topology_description.has_writable_server():
        ping(settings)


def ping(settings: Settings | None = None) -> None:
    """Within MONGO_TIMEOUT_MS, even inside a request's longer deadline."""
    settings = settings or get_settings()
    with pymongo.timeout(settings.mongo_timeout_ms / 1000):
        get_client(settings).admin.command("ping")
