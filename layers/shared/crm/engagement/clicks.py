"""Clicks on tracked links (crm.engagement.links): the redirect puts each on the clicks queue, and their consumer
applies a batch of them to their logs in one bulk write; the roll-up then moves the campaign's counters.

Each click is applied exactly once however often its message is delivered, late or out of order: one update of its
log, conditioned on the click's id not being on the log yet, records the id (up to MAX_CLICKS_KEPT a log; later
clicks of that recipient are not counted) and pushes onto the log's tally, for the roll-up (crm.services.delivery):
`clicked` on the recipient's first click (`stats.clicked` counts recipients; `events.clicked`, the log's
`clicked_at`, is the earliest click), `link_stats.<i>.recipients` on their first click of link i, and
`link_stats.<i>.clicks` on every click. A click counts whatever the log's status (a click after a late receipt, or
on a log settled FAILED while the person had the message) and the campaign's (clicks come after COMPLETED). A click
whose log does not exist matches nothing and is dropped."""
from __future__ import annotations

import uuid

from botocore.exceptions import BotoCoreError, ClientError
from bson import ObjectId
from pydantic import Field, ValidationError
from pymongo import UpdateOne
from pymongo.database import Database

from crm import queues
from crm.config import Settings
from crm.db import LOGS
from crm.engagement.links import LINK_BYTES, Click
from crm.errors import CRMError
from crm.messages import unpack
from crm.models.common import InputModel, IsoTime, ObjectIdStr, first_problem, to_iso, utcnow
from crm.observability import logger
from crm.services.delivery import PENDING, roll_up_due

QUEUE_KIND = "clicks"
# Click ids kept on a log, to know a click applied from its redelivery; a recipient's clicks beyond are not counted.
MAX_CLICKS_KEPT = 50
CLICKED = "clicked"
UUID4 = r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"


class ClickIn(InputModel):
    """A click as the redirect queued it."""
    click_id: str = Field(pattern=UUID4)
    log_id: ObjectIdStr
    link: int = Field(ge=0, lt=2 ** (8 * LINK_BYTES), strict=True)
    at: IsoTime


def queue(settings: Settings, click: Click) -> bool:
    """Puts one click on the clicks queue; False, with a warning, when the queue cannot be reached (the redirect
    still answers: the person must get to the page, and this click goes uncounted)."""
    record = {"click_id": str(uuid.uuid4()), "log_id": str(click.log_id), "link": click.link,
              "at": to_iso(utcnow())}
    try:
        queues.enqueue(settings.sqs_click_queue_url, QUEUE_KIND, [record], settings)
    except (CRMError, BotoCoreError, ClientError) as exc:
        logger.warning("click not recorded: the clicks queue cannot be reached",
                       extra={"log_id": record["log_id"], "link": click.link, "error": type(exc).__name__})
        return False
    return True


def read(body: str) -> list[ClickIn]:
    """A clicks message's records; one that cannot be read fails its message alone."""
    kind, records = unpack(body)
    if kind != QUEUE_KIND:
        raise ValueError(f"expected a {QUEUE_KIND} message, got {kind!r}")
    try:
        return [ClickIn.model_validate(record) for record in records]
    except ValidationError as exc:
        raise ValueError(f"not a click: {first_problem(exc)}") from exc


def apply(db: Database, clicks: list[ClickIn], roll_up_every: float) -> int:
    """Applies a batch of clicks (one bulk write), then rolls up their campaigns that are due; how many clicks
    counted now (a repeated one, one beyond the cap and one of an unknown log count none)."""
    if not clicks:
        return 0
    counted = db[LOGS].bulk_write([_click_write(c) for c in clicks], ordered=False).modified_count
    # Also when nothing counted now: a first delivery that died before its roll-up left tallies to count.
    roll_up_due(db, list({ObjectId(c.log_id) for c in clicks}), roll_up_every)
    return counted


def _click_write(click: ClickIn) -> UpdateOne:
    """The click's one update of its log: everything it changes depends on the log as it is when applied, so
    clicks of one recipient applied in any order, or at once, each count once."""
    link = click.link
    clicked_links = {"$ifNull": ["$clicked_links", []]}
    first_click = {"$eq": [{"$type": "$events.clicked"}, "missing"]}
    first_of_link = {"$not": [{"$in": [link, clicked_links]}]}
    return UpdateOne(
        {"_id": ObjectId(click.log_id), "click_ids": {"$ne": click.click_id},
         f"click_ids.{MAX_CLICKS_KEPT - 1}": {"$exists": False}},
        [{"$set": {
            "click_ids": {"$concatArrays": [{"$ifNull": ["$click_ids", []]}, [click.click_id]]},
            "tally": {"$concatArrays": [
                {"$ifNull": ["$tally", []]},
                {"$cond": [first_click, [CLICKED], []]},
                {"$cond": [first_of_link, [f"link_stats.{link}.recipients"], []]},
                [f"link_stats.{link}.clicks"]]},
            # The earliest click, whatever order they are applied in.
            "events.clicked": {"$min": [{"$ifNull": ["$events.clicked", click.at]}, click.at]},
            "clicked_links": {"$setUnion": [clicked_links, [link]]},
            **PENDING}}])

