"""Segments: save rules, list and read them, preview an audience."""
from __future__ import annotations

from fastapi import APIRouter

from crm import rules
from crm.access.policy import EDITORS, EVERY_ROLE, Policy, reads_only
from crm.api.access import Audit, guarded_by
from crm.api.deps import DEFAULT_LIMIT, Cursor, Limit, SettingsDep
from crm.api.storage import DbDep
from crm.db import CUSTOMERS, SEGMENTS
from crm.models.common import ObjectIdStr, Page
from crm.models.segments import Preview, PreviewIn, Segment, SegmentIn
from crm.services import segments as service

router = APIRouter(prefix="/api/segments", tags=["segments"],
                   dependencies=[guarded_by(Policy(read_roles=EVERY_ROLE, write_roles=EDITORS))])


@router.post("", status_code=201, response_model=Segment)
def create_segment(body: SegmentIn, audit: Audit, settings: SettingsDep) -> Segment:
    return service.create(audit, body.name, body.description, service.parse_rules(audit.db, body.rules),
                          settings.audience_count_time_limit_ms, settings.consent_mode)


@router.get("", response_model=Page[Segment])
def list_segments(db: DbDep, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None) -> Page[Segment]:
    items, next_cursor = service.list_page(db[SEGMENTS], limit, cursor)
    return Page[Segment](items=items, next_cursor=next_cursor)


@router.post("/preview", response_model=Preview)
@reads_only
def preview_rules(body: PreviewIn, db: DbDep, settings: SettingsDep) -> Preview:
    return service.preview(db[CUSTOMERS], service.parse_rules(db, body.rules), settings.audience_count_time_limit_ms,
                           settings.consent_mode)


@router.get("/{segment_id:objectid}", response_model=Segment)
def get_segment(segment_id: ObjectIdStr, db: DbDep) -> Segment:
    return service.to_segment(service.get(db[SEGMENTS], segment_id))


@router.get("/{segment_id:objectid}/preview", response_model=Preview)
def preview_segment(segment_id: ObjectIdStr, db: DbDep, settings: SettingsDep) -> Preview:
    segment = service.get(db[SEGMENTS], segment_id)
    return service.preview(db[CUSTOMERS], rules.parse(segment["rules"]), settings.audience_count_time_limit_ms,
                           settings.consent_mode)
