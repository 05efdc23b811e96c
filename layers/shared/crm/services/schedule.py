"""What the reconciler's schedule starts on time: scheduled campaigns at their send_at, the winner of an A/B test
once its time is up, and sweeps whose job was lost. Each is a compare-and-set on the campaign followed by a queued
job; a run that dies between the two leaves a campaign whose stalled fan-out or sweep the next runs restart."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Callable

from bson import ObjectId
from pymongo.database import Database

from crm.db import CAMPAIGNS, LOGS
from crm.models.campaigns import CANCELLED, QUEUED, SCHEDULED, SENDING, SENT
from crm.services import lifecycle

# The engagement a test's winner may be picked by, as the log records it (crm.services.email_events,
# crm.engagement): recipients who opened, clicked, converted; and the revenue attributed to them.
MEASURES = {"opened": "events.opened", "clicked": "events.clicked", "converted": "events.converted"}


def start_due(db: Database, now: datetime, queue_fan_out: Callable[[ObjectId], None]) -> int:
    """Scheduled campaigns whose time has come, QUEUED with their audience as of now; how many."""
    started = 0
    for campaign in db[CAMPAIGNS].find({"status": SCHEDULED, "send_at": {"$lte": now}}, {"_id": 1}):
        moved = db[CAMPAIGNS].update_one({"_id": campaign["_id"], "status": SCHEDULED},
                                         {"$set": {"status": QUEUED, "audience_at": now, "fanout.updated_at": now}})
        if moved.modified_count:
            queue_fan_out(campaign["_id"])
            started += 1
    return started


def pick_winners(db: Database, now: datetime, queue_fan_out: Callable[[ObjectId], None]) -> int:
    """Tests whose every message has its outcome and whose `minutes` have passed since the last was handed over:
    the variant with the highest rate per recipient (ties: the first listed) wins, and the rest of the audience is
    fanned out with it. How many winners were picked."""
    picked = 0
    for campaign in db[CAMPAIGNS].find({"status": SENDING, "fanout.phase": lifecycle.WAITING},
                                       {"test": 1, "variants": 1, "stats": 1, "fanout": 1}):
        if campaign["stats"]["queued"]:
            continue  # test messages still on their way
        last = db[LOGS].find_one({"campaign_id": campaign["_id"], "sent_at": {"$ne": None}}, {"sent_at": 1},
                                 sort=[("sent_at", -1)])
        ends = (last["sent_at"] if last else campaign["fanout"]["updated_at"]) + timedelta(
            minutes=campaign["test"]["minutes"])
        if now < ends:
            continue
        winner = best_variant(db, campaign)
        moved = db[CAMPAIGNS].update_one(
            {"_id": campaign["_id"], "status": SENDING, "fanout.phase": lifecycle.WAITING},
            {"$set": {"winner": winner, "fanout.phase": lifecycle.WINNER, "fanout.cursor": None,
                      "fanout.updated_at": now}})
        if moved.modified_count:
            queue_fan_out(campaign["_id"])
            picked += 1
    return picked


def variant_results(db: Database, campaign_id: ObjectId) -> dict[str, dict[str, int]]:
    """Per variant: recipients (logs SENT), how many of them opened, clicked and converted, and their revenue."""
    counted = {f"{name}": {"$sum": {"$cond": [{"$ifNull": [f"${field}", False]}, 1, 0]}}
               for name, field in MEASURES.items()}
    counted["revenue"] = {"$sum": {"$ifNull": ["$revenue", 0]}}
    rows = db[LOGS].aggregate([
        {"$match": {"campaign_id": campaign_id, "status": SENT, "variant": {"$ne": None}}},
        {"$group": {"_id": "$variant", "recipients": {"$sum": 1}, **counted}}])
    return {row.pop("_id"): row for row in rows}


def best_variant(db: Database, campaign: dict[str, Any]) -> str:
    results = variant_results(db, campaign["_id"])
    measure = campaign["test"]["win_by"]
    best, best_rate = None, -1.0
    for variant in campaign["variants"]:
        row = results.get(variant["name"], {})
        rate = row.get(measure, 0) / row["recipients"] if row.get("recipients") else 0.0
        if rate > best_rate:
            best, best_rate = variant["name"], rate
    return best


def sweep_stranded(db: Database, now: datetime, queue_sweep: Callable[[ObjectId], None]) -> int:
    """Running campaigns, and cancelled ones not yet settled, with logs still parked for a pause and no sweep under
    way (whoever parked them looked at the campaign before a resume or cancel and died before looking again): a
    sweep marked and queued for each. One indexed read a campaign a run."""
    marked = 0
    for campaign in db[CAMPAIGNS].find({"$or": [{"status": SENDING}, {"status": CANCELLED, "stats.queued": {"$gt": 0}}],
                                        "sweep.pending": {"$ne": True}}, {"status": 1, "sweep": 1}):
        if not lifecycle.stranded(db, campaign):
            continue
        moved = db[CAMPAIGNS].update_one({"_id": campaign["_id"], "sweep.pending": {"$ne": True}},
                                         {"$set": {"sweep": {"pending": True, "updated_at": now}}})
        if moved.modified_count:
            queue_sweep(campaign["_id"])
            marked += 1
    return marked


def restart_stalled_sweeps(db: Database, now: datetime, stall: timedelta,
                           queue_sweep: Callable[[ObjectId], None]) -> int:
    """Sweeps marked but not finished for `stall`: their job was lost (or died); queued again."""
    restarted = 0
    for campaign in db[CAMPAIGNS].find({"sweep.pending": True, "sweep.updated_at": {"$lte": now - stall},
                                        "status": {"$in": [QUEUED, SENDING, CANCELLED]}}, {"sweep": 1}):
        moved = db[CAMPAIGNS].update_one(
            {"_id": campaign["_id"], "sweep.updated_at": campaign["sweep"]["updated_at"]},
            {"$set": {"sweep.updated_at": now}})
        if moved.modified_count:
            queue_sweep(campaign["_id"])
            restarted += 1
    return restarted
