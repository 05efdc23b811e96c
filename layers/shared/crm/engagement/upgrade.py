"""What roll-ups of the release before v3 did to the tallies v3 added, put right once no function of that release
runs any more (the v3 backfill calls these, crm.rules.backfill, from SETTLE after the deploy).

While a stack is updated, functions of both releases run side by side, and the roll-up of the release before runs
inside most consumers (receipts, delivery events, sends, the fan-out), not only in the roll-up function: no order of
the update keeps it from a tally that v3's order ingestion, reconciler or clicks consumer wrote. It:
- counted a tally naming its own path (`link_stats.<i>.clicks`, `control.converted`) under `stats.`
  (`stats.link_stats.<i>.clicks`): `refile_counters` moves those counters to their paths;
- cleared the log's tally and its flag but left `tally_revenue`, which no roll-up reads without the flag:
  `flag_stranded_revenue` flags those logs again, and the next roll-up (crm.services.delivery) counts their revenue,
  and only it, exactly once.
Both may run any number of times, also at once: each write is conditioned on what it puts right.
"""
from __future__ import annotations

from typing import Any, Iterable

from bson import ObjectId
from pymongo.database import Database

from crm.db import CAMPAIGNS, LOGS, in_chunks
from crm.services.delivery import PATH_TALLIES, PENDING

# Where the release before filed a counter that names its own path: under `stats.`.
MISFILED = tuple(f"stats.{prefix.rstrip('.')}" for prefix in PATH_TALLIES)
# A log the roll-up of the release before counted: no flag, but the revenue it left.
STRANDED = {"tally_revenue": {"$exists": True}, "pending": {"$exists": False}}


def flag_stranded_revenue(db: Database, customer_ids: Iterable[ObjectId]) -> int:
    """Flags these customers' logs whose attributed revenue was left uncounted, for the next roll-up; how many (one
    indexed update per hundred customers)."""
    return sum(db[LOGS].update_many({"customer_id": {"$in": chunk}, **STRANDED}, {"$set": PENDING}).modified_count
               for chunk in in_chunks(list(customer_ids)))


def refile_counters(db: Database) -> int:
    """Moves every campaign's counters filed under `stats.` to their own paths; how many campaigns it moved."""
    moved = 0
    for campaign in db[CAMPAIGNS].find({"$or": [{path: {"$exists": True}} for path in MISFILED]},
                                       {path: 1 for path in MISFILED}):
        counters, as_read = {}, {}
        for path in MISFILED:
            value = campaign.get("stats", {}).get(path.split(".", 1)[1])
            as_read[path] = value if value is not None else {"$exists": False}
            counters.update(_flattened(path.split(".", 1)[1], value or {}))
        change: dict[str, Any] = {"$unset": dict.fromkeys(MISFILED, "")}
        if counters:
            change["$inc"] = counters
        moved += db[CAMPAIGNS].update_one({"_id": campaign["_id"], **as_read}, change).modified_count
    return moved


def _flattened(prefix: str, value: Any) -> dict[str, float]:
    """A nested counter document as the dotted paths of its numbers (`{"0": {"clicks": 2}}` → `prefix.0.clicks`)."""
    if not isinstance(value, dict):
        return {prefix: value} if isinstance(value, (int, float)) and not isinstance(value, bool) else {}
    return {path: n for key, inner in value.items() for path, n in _flattened(f"{prefix}.{key}", inner).items()}
