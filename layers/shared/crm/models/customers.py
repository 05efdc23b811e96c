"""Customer shapes of API.md."""
from __future__ import annotations

from pydantic import BaseModel, Field

from crm.models.common import Count, Email, InputModel, IsoTime, Money

MAX_BATCH = 1000
MAX_NAME_LENGTH = 200


class CustomerIn(InputModel):
    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    email: Email
    phone: str | None = Field(default=None, min_length=3, max_length=32, pattern=r"^\+?[0-9][0-9 ()\-.]*$")
    spend: Money | None = None
    visits: Count | None = None
    last_active: IsoTime | None = None


class CustomerBatchIn(InputModel):
    customers: list[CustomerIn] = Field(min_length=1, max_length=MAX_BATCH)


class Customer(BaseModel):
    id: str
    name: str
    email: str
    phone: str | None
    spend: float
    visits: int
    last_active: IsoTime
    created_at: IsoTime
    updated_at: IsoTime
