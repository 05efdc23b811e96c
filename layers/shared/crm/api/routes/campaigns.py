"""Campaigns: create (the audience is fanned out by a consumer), list with stats, read with logs."""
from __future__ import annotations

from typing import Annotated, Literal

from bson import ObjectId
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from crm.access.policy import EDITORS, EVERY_ROLE, Policy
from crm.api.access import Audit, guarded_by
from crm.api.deps import DEFAULT_LIMIT, Cursor, IdempotencyKey, Limit, SettingsDep
from crm.api.storage import DbDep
from crm.db import IDEMPOTENCY_KEYS
from crm.errors import InvalidInput
from crm.models.campaigns import Campaign, CampaignDetail, CampaignIn, Log
from crm.models.common import ObjectIdStr, Page
from crm.services import campaign_jobs
from crm.services import campaigns as service
from crm.services.idempotency import run_once

router = APIRouter(prefix="/api/campaigns", tags=["campaigns"],
                   dependencies=[guarded_by(Policy(read_roles=EVERY_ROLE, write_roles=EDITORS))])


@router.post("", status_code=202, response_model=Campaign)
def create_campaign(body: CampaignIn, db: DbDep, settings: SettingsDep, audit: Audit,
                    idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Stores the campaign and queues its fan-out; the audience is never read inside this request."""
    if settings.channel == "ses" and body.subject is None:
        raise InvalidInput("Invalid input: an e-mail campaign needs a subject",
                           [{"loc": ["body", "subject"], "msg": "required when the channel is e-mail"}])

    def queue_fan_out(campaign_id: ObjectId) -> None:
        campaign_jobs.queue_fan_out(settings, campaign_id, settings.fanout_start_delay_seconds)

    def create(campaign_id: ObjectId) -> tuple[int, dict]:
        doc = service.create(audit, campaign_id, body.name, body.segment_id, body.message, queue_fan_out,
                             settings.consent_mode, body.subject)
        return 202, service.to_campaign(doc).model_dump(mode="json")

    status, reply = run_once(db[IDEMPOTENCY_KEYS], f"campaigns:{audit.actor.key}", idempotency_key,
                             body.model_dump(mode="json"), create)
    return JSONResponse(reply, status_code=status)


@router.get("", response_model=Page[Campaign])
def list_campaigns(db: DbDep, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None) -> Page[Campaign]:
    items, next_cursor = service.list_page(db, limit, cursor)
    return Page[Campaign](items=items, next_cursor=next_cursor)


@router.get("/{campaign_id:objectid}", response_model=CampaignDetail)
def get_campaign(campaign_id: ObjectIdStr, db: DbDep,
                 status: Annotated[Literal["QUEUED", "SENT", "FAILED", "SKIPPED"] | None, Query()] = None,
                 limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None) -> CampaignDetail:
    doc = service.get(db, campaign_id)
    logs, next_cursor = service.logs_page(db, doc["_id"], status, limit, cursor)
    return CampaignDetail(**service.to_campaign(doc).model_dump(), logs=Page[Log](items=logs, next_cursor=next_cursor))
