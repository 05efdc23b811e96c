"""Segments: save rules, list and read them, preview an audience."""
from __future__ import annotations

from fastapi import APIRouter, Depends

from crm import rules
from crm.api.deps import DEFAULT_LIMIT, CurrentUser, Cursor, Limit, SettingsDep, current_user
from crm.api.storage import DbDep
from crm.db import CUSTOMERS, SEGMENTS
from crm.models.common import ObjectIdStr, Page
from crm.models.segments import Preview, PreviewIn, Segment, SegmentIn
from crm.services import segments as service

router = APIRouter(prefix="/api/segments", tags=["segments"], dependencies=[Depends(current_user)])


@router.post("", status_code=201, response_model=Segment)
def create_segment(body: SegmentIn, db: DbDep, user: CurrentUser, settings: SettingsDep) -> Segment:
    node = rules.parse(body.rules)
    return service.create(db[SEGMENTS], db[CUSTOMERS], body.name, body.description, node, user.email,
                          settings.audience_count_time_limit_ms)


@router.get("", response_model=Page[Segment])
def list_segments(db: DbDep, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None) -> Page[Segment]:
    items, next_cursor = service.list_page(db[SEGMENTS], limit, cursor)
    return Page[Segment](items=items, next_cursor=next_cursor)


@router.post("/preview", response_model=Preview)
def preview_rules(body: PreviewIn, db: DbDep, settings: SettingsDep) -> Preview:
    return service.preview(db[CUSTOMERS], rules.parse(body.rules), settings.audience_count_time_limit_ms)


@router.get("/{segment_id:objectid}", response_model=Segment)
def get_segment(segment_id: ObjectIdStr, db: DbDep) -> Segment:
    return service.to_segment(service.get(db[SEGMENTS], segment_id))


@router.get("/{segment_id:objectid}/preview", response_model=Preview)
def preview_segment(segment_id: ObjectIdStr, db: DbDep, settings: SettingsDep) -> Preview:
    segment = service.get(db[SEGMENTS], segment_id)
    return service.preview(db[CUSTOMERS], rules.parse(segment["rules"]), settings.audience_count_time_limit_ms)
