"""Order shapes of API.md."""
from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from crm.models.common import Email, InputModel, IsoTime, Money, ObjectIdStr, WholeNumber

MAX_BATCH = 1000


class OrderItem(InputModel):
    sku: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    qty: Annotated[WholeNumber, Field(ge=1, le=100_000)]
    price: Money


EXAMPLE = {"order_id": "ord-1001", "customer_email": "ada@example.com", "amount": 1299.5,
           "items": [{"sku": "TEA-01", "name": "Darjeeling tea", "qty": 2, "price": 649.75}],
           "date": "2026-05-01T10:00:00Z"}


class OrderIn(InputModel):
    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE]})

    order_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-.:/]*$")
    customer_id: ObjectIdStr | None = None
    customer_email: Email | None = None
    amount: Money
    items: list[OrderItem] = Field(min_length=1, max_length=500)
    date: IsoTime | None = None

    @model_validator(mode="after")
    def _one_customer_reference(self) -> OrderIn:
        if (self.customer_id is None) == (self.customer_email is None):
            raise ValueError("give exactly one of customer_id or customer_email")
        return self


class OrderBatchIn(InputModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"orders": [EXAMPLE]}]})

    orders: list[OrderIn] = Field(min_length=1, max_length=MAX_BATCH)


class Order(BaseModel):
    id: str
    order_id: str
    customer_id: str
    amount: float
    items: list[dict]
    date: IsoTime
    created_at: IsoTime
