"""Segment shapes of API.md; the rules themselves are validated by crm.rules."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from crm.models.common import InputModel, IsoTime
from crm.models.customers import Customer


class SegmentIn(InputModel):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    rules: dict[str, Any]


class PreviewIn(InputModel):
    rules: dict[str, Any]


class Segment(BaseModel):
    id: str
    name: str
    description: str | None
    rules: dict[str, Any]
    created_by: str
    created_at: IsoTime
    audience_size: int


class Preview(BaseModel):
    audience_size: int
    sample: list[Customer]
