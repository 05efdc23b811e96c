"""An upgrade to v3 while campaigns run: the roll-up of the release before (inside most of its consumers) meets the
tallies v3's order ingestion and clicks consumer write, files link and control counters under `stats.` and leaves
attributed revenue uncounted on the logs; the v3 backfill puts both right after the deploy has settled, once however
often it runs (crm.engagement.upgrade)."""
from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

from bson import ObjectId

from crm.db import CAMPAIGNS, CUSTOMERS, LOGS
from crm.engagement import attribution, clicks, upgrade
from crm.models.common import utcnow
from crm.rules import backfill
from crm.services.delivery import PENDING, roll_up_pending


def _roll_up_of_the_release_before(db, campaign_id: ObjectId) -> None:
    """What the release before v3's roll-up did with a campaign's waiting tallies: each tally counted as
    `stats.<tally>`, the tally and its flag cleared, nothing else read."""
    logs = list(db[LOGS].find({**PENDING, "campaign_id": campaign_id}, {"tally": 1}))
    counts = Counter(tally for log in logs for tally in log.get("tally", []))
    db[CAMPAIGNS].update_one({"_id": campaign_id}, {"$inc": {f"stats.{tally}": n for tally, n in counts.items()}})
    db[LOGS].update_many({"_id": {"$in": [log["_id"] for log in logs]}}, {"$unset": {"tally": "", "pending": ""}})


def test_what_the_release_before_did_to_v3_tallies_is_put_right_once_by_the_backfill(db):
    now = utcnow()
    campaign, buyer, clicker, held_back = ObjectId(), ObjectId(), ObjectId(), ObjectId()
    db[CUSTOMERS].insert_many([{"_id": customer, "name": "C", "email": f"{customer}@example.com"}
                                for customer in (buyer, clicker, held_back)])
    db[CAMPAIGNS].insert_one({"_id": campaign, "status": "COMPLETED", "fanout": {"done": True},
                              "stats": {"queued": 0, "sent": 2, "skipped": 1}})
    sent = now - timedelta(days=1)
    bought_log, clicked_log = ObjectId(), ObjectId()
    db[LOGS].insert_many([
        {"_id": bought_log, "campaign_id": campaign, "customer_id": buyer, "status": "SENT", "sent_at": sent},
        {"_id": clicked_log, "campaign_id": campaign, "customer_id": clicker, "status": "SENT", "sent_at": sent},
        {"campaign_id": campaign, "customer_id": held_back, "status": "SKIPPED", "reason": "control",
         "created_at": sent}])
    # v3's writers, during the deploy: two orders attributed (one to the control group), a click.
    with db.client.start_session() as session:
        session.with_transaction(lambda s: attribution.attribute(db, [
            attribution.Purchase("o-1", buyer, 100.0, now), attribution.Purchase("o-2", held_back, 40.0, now)],
            5, s))
    db[LOGS].bulk_write([clicks._click_write(clicks.ClickIn(
        click_id="0b6f8a52-3f0e-4c1e-9a0b-5d2c7e1f4a11", log_id=str(clicked_log), link=0, at=now))])
    _roll_up_of_the_release_before(db, campaign)
    assert roll_up_pending(db) == 0, "nothing left for the v3 roll-up to find: the revenue is stranded"

    backfill.request(db, now - backfill.SETTLE - timedelta(seconds=1))
    assert backfill.run(db, time.time() + 600).done
    roll_up_pending(db)
    stats = db[CAMPAIGNS].find_one({"_id": campaign})
    assert stats["stats"] == {"queued": 0, "sent": 2, "skipped": 1, "converted": 1, "clicked": 1, "revenue": 100.0}
    assert stats["control"] == {"converted": 1, "revenue": 40.0}
    assert stats["link_stats"] == {"0": {"recipients": 1, "clicks": 1}}
    assert db[LOGS].count_documents({"tally_revenue": {"$exists": True}}) == 0

    # Again (a reconciler run cut off after the repair, before the cursor moved): nothing moves twice.
    assert upgrade.flag_stranded_revenue(db, [buyer, clicker, held_back]) == 0
    assert upgrade.refile_counters(db) == 0
    assert roll_up_pending(db) == 0
    assert db[CAMPAIGNS].find_one({"_id": campaign}) == stats
