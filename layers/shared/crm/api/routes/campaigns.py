"""Campaigns: create (the audience is fanned out by a consumer), list with stats, read with logs."""
from __future__ import annotations

from typing import Annotated, Literal

from bson import ObjectId
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from crm.access.policy import EDITORS, EVERY_ROLE, Policy
from crm.access.principals import Role
from crm.api.access import Audit, guarded_by
from crm.api.deps import DEFAULT_LIMIT, Cursor, IdempotencyKey, Limit, SettingsDep
from crm.api.storage import DbDep
from crm.db import IDEMPOTENCY_KEYS
from crm.engagement.report import CampaignReport, report
from crm.errors import Forbidden, InvalidInput
from crm.models.campaigns import Campaign, CampaignDetail, CampaignIn, Log
from crm.models.common import ObjectIdStr, Page
from crm.services import campaign_jobs, lifecycle
from crm.services import campaigns as service
from crm.services.idempotency import run_once

router = APIRouter(prefix="/api/campaigns", tags=["campaigns"],
                   dependencies=[guarded_by(Policy(read_roles=EVERY_ROLE, write_roles=EDITORS))])


@router.post("", status_code=202, response_model=Campaign)
def create_campaign(body: CampaignIn, db: DbDep, settings: SettingsDep, audit: Audit,
                    idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Stores the campaign and queues its fan-out (a scheduled one is started by the reconciler at its time); the
    audience is never read inside this request."""
    _check_sendable(body, settings.channel, audit.actor.role)

    def queue_fan_out(campaign_id: ObjectId) -> None:
        campaign_jobs.queue_fan_out(settings, campaign_id, settings.fanout_start_delay_seconds)

    def create(campaign_id: ObjectId) -> tuple[int, dict]:
        doc = service.create(audit, campaign_id, body, queue_fan_out, settings.consent_mode)
        return 202, service.to_campaign(doc).model_dump(mode="json")

    status, reply = run_once(db[IDEMPOTENCY_KEYS], f"campaigns:{audit.actor.key}", idempotency_key,
                             body.model_dump(mode="json", by_alias=True), create)
    return JSONResponse(reply, status_code=status)


def _check_sendable(body: CampaignIn, channel: str, role: Role | None) -> None:
    if channel == "ses":
        if body.variants is None and body.subject is None:
            raise InvalidInput.for_field(("body", "subject"), "required when the channel is e-mail")
        for index, variant in enumerate(body.variants or []):
            if variant.subject is None:
                raise InvalidInput.for_field(("body", "variants", index, "subject"),
                                             "required when the channel is e-mail")
    if body.ignore_frequency_cap and role != Role.ADMIN:
        raise Forbidden("Only admins may send past the frequency cap",
                        [{"loc": ["body", "ignore_frequency_cap"], "msg": "admins only"}])


def _status_change(action: str):
    def change(campaign_id: ObjectIdStr, settings: SettingsDep, audit: Audit) -> Campaign:
        doc = lifecycle.change_status(audit, campaign_id, action,
                                      lambda cid: campaign_jobs.queue_sweep(settings, cid),
                                      lambda cid: campaign_jobs.queue_fan_out(settings, cid))
        return service.to_campaign(doc)

    change.__name__ = f"{action}_campaign"
    change.__doc__ = {"pause": "From the reply on, none of its messages is handed to the channel (a call under way "
                               "may finish); they wait for a resume.",
                      "resume": "Sending goes on; each recipient still gets at most one message.",
                      "cancel": "Final: logs not yet handed over become SKIPPED with reason cancelled."}[action]
    return change


for _action in lifecycle.TRANSITIONS:
    router.add_api_route(f"/{{campaign_id:objectid}}/{_action}", _status_change(_action), methods=["POST"],
                         response_model=Campaign, responses={409: {"description": "The campaign's status does not "
                                                                                   "allow this change"}})


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


@router.get("/{campaign_id:objectid}/report", response_model=CampaignReport)
def get_report(campaign_id: ObjectIdStr, db: DbDep, settings: SettingsDep) -> CampaignReport:
    """The funnel, rates, revenue, links, variants and control of a campaign, from its rolled-up counters."""
    return report(service.get(db, campaign_id), delivery_reported=settings.channel == "ses")
