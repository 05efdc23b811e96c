"""Customer shapes of API.md."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from crm.models.common import Count, Email, InputModel, IsoTime, Money

MAX_BATCH = 1000
MAX_NAME_LENGTH = 200


EXAMPLE = {"name": "Ada Lovelace", "email": "ada@example.com", "phone": "+44 20 7946 0958", "spend": 5200,
           "visits": 7, "last_active": "2026-05-01T10:00:00Z"}


class CustomerIn(InputModel):
    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE]})

    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    email: Email
    phone: str | None = Field(default=None, min_length=3, max_length=32, pattern=r"^\+?[0-9][0-9 ()\-.]*$")
    spend: Money | None = None
    visits: Count | None = None
    last_active: IsoTime | None = None


class CustomerBatchIn(InputModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"customers": [EXAMPLE]}]})

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
