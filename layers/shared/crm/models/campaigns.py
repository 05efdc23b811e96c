"""Campaign, communication log and delivery receipt shapes of API.md."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from crm.models.common import InputModel, IsoTime, ObjectIdStr, Page

QUEUED, SENT, FAILED = "QUEUED", "SENT", "FAILED"
SENDING, COMPLETED = "SENDING", "COMPLETED"


class CampaignIn(InputModel):
    name: str = Field(min_length=1, max_length=200)
    segment_id: ObjectIdStr
    message: str = Field(min_length=1, max_length=1600)


class Stats(BaseModel):
    audience: int = 0
    queued: int = 0
    sent: int = 0
    failed: int = 0


class Campaign(BaseModel):
    id: str
    name: str
    segment_id: str
    message: str
    status: str
    created_at: IsoTime
    stats: Stats


class Log(BaseModel):
    id: str
    customer_id: str
    status: str
    message: str
    vendor_message_id: str | None
    sent_at: IsoTime | None
    updated_at: IsoTime


class CampaignDetail(Campaign):
    logs: Page[Log]


class Recipient(InputModel):
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=254)
    phone: str | None = Field(default=None, max_length=32)


class VendorSendIn(InputModel):
    log_id: ObjectIdStr
    to: Recipient
    message: str = Field(min_length=1, max_length=2000)


class VendorBatchIn(InputModel):
    messages: list[VendorSendIn] = Field(min_length=1, max_length=100)


class VendorAccepted(BaseModel):
    vendor_message_id: str
    status: Literal["ACCEPTED"] = "ACCEPTED"


class VendorResult(VendorAccepted):
    log_id: str


class VendorBatchAccepted(BaseModel):
    results: list[VendorResult]


class ReceiptIn(InputModel):
    vendor_message_id: str = Field(min_length=1, max_length=100)
    log_id: ObjectIdStr
    status: Literal["SENT", "FAILED"]
    timestamp: IsoTime
    reason: str | None = Field(default=None, max_length=500)


class ReceiptBatchIn(InputModel):
    receipts: list[ReceiptIn] = Field(min_length=1, max_length=100)
