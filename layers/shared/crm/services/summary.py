"""A campaign's performance in a few sentences, from its real stats and the user's other campaigns."""
from __future__ import annotations

from typing import Any

from pymongo.database import Database

from crm.db import CAMPAIGNS

COMPARE_WITH = 50


def summarise(db: Database, campaign: dict[str, Any]) -> str:
    stats = campaign["stats"]
    audience, sent, failed, queued = stats["audience"], stats["sent"], stats["failed"], stats["queued"]
    parts = [f"Your campaign \u201c{campaign['name']}\u201d reached {audience:,} customer{'s' * (audience != 1)}"]
    if sent + failed == 0:
        skipped = stats.get("skipped", 0)
        parts[0] += (f"; {skipped:,} {'was' if skipped == 1 else 'were'} skipped (unsubscribed, suppressed or not "
                     "subscribed) and no delivery has been reported yet." if skipped else
                     "; no delivery has been reported yet.")
        return " ".join(parts)
    rate = sent / (sent + failed) * 100
    sent_words = f"{sent:,} message was sent" if sent == 1 else f"{sent:,} messages were sent"
    parts[0] += f"; {sent_words} and {failed:,} failed ({rate:.1f}% delivered)."
    if queued:
        parts.append(f"{queued:,} are still on their way.")
    skipped = stats.get("skipped", 0)
    if skipped:
        parts.append(f"{skipped:,} {'was' if skipped == 1 else 'were'} skipped: unsubscribed, suppressed or not "
                     "subscribed.")
    engagement = [f"{stats[k]:,} {k}" for k in ("bounced", "complained", "opened", "clicked") if stats.get(k)]
    if engagement:
        parts.append(f"E-mail: {', '.join(engagement)}.")
    recent = db[CAMPAIGNS].find({"created_by": campaign["created_by"], "_id": {"$ne": campaign["_id"]}},
                                {"stats": 1}).sort("_id", -1).limit(COMPARE_WITH)
    others = [o for o in recent if o["stats"]["sent"] + o["stats"]["failed"] > 0]
    if others:
        total_sent = sum(o["stats"]["sent"] for o in others)
        total = sum(o["stats"]["sent"] + o["stats"]["failed"] for o in others)
        average = total_sent / total * 100
        difference = rate - average
        direction = "above" if difference > 0.05 else "below" if difference < -0.05 else "in line with"
        gap = f"{abs(difference):.1f} points {direction}" if direction != "in line with" else direction
        parts.append(f"That is {gap} your average of {average:.1f}% over {len(others)} other "
                     f"campaign{'s' * (len(others) != 1)}.")
    else:
        parts.append("It is your first campaign with deliveries, so there is nothing to compare it with yet.")
    return " ".join(parts)
