"""Campaign, communication log and delivery receipt shapes of API.md."""
from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from crm.models.common import InputModel, IsoTime, ObjectIdStr, Page
from crm.models.customers import ATTRIBUTE_KEY, MAX_ATTRIBUTE_TEXT, MAX_NAME_LENGTH

QUEUED, SENT, FAILED = "QUEUED", "SENT", "FAILED"
SENDING, COMPLETED = "SENDING", "COMPLETED"
# The longest message the vendor takes.
MAX_MESSAGE_LENGTH = 2000
# {{name}}, {{first_name}} and {{attributes.<key>}} (group "key"); any other {{...}} is text like the rest.
PLACEHOLDERS = re.compile(r"\{\{(name|first_name|attributes\.(?P<key>%s))\}\}"
                          % ATTRIBUTE_KEY.removeprefix("^").removesuffix("$"))
# The longest text an attribute value becomes in a message: a string is at most MAX_ATTRIBUTE_TEXT; a number
# (|n| <= 1e15, at most 17 significant digits) at most 24, as "-1.2345678901234567e-300"; a time 24, as
# "2026-11-25T10:00:00.000Z"; a boolean 5, "false".
LONGEST_NUMBER_TEXT = 24
LONGEST_TIME_TEXT = len("2026-11-25T10:00:00.000Z")
LONGEST_ATTRIBUTE_TEXT = max(MAX_ATTRIBUTE_TEXT, LONGEST_NUMBER_TEXT, LONGEST_TIME_TEXT)


class CampaignIn(InputModel):
    name: str = Field(min_length=1, max_length=200)
    segment_id: ObjectIdStr
    message: str = Field(min_length=1, max_length=1600)

    @field_validator("message")
    @classmethod
    def _fits_once_personalised(cls, message: str) -> str:
        """Every recipient's message must reach the vendor: each placeholder may become a name, or an attribute's
        text, of full length."""
        placeholders = list(PLACEHOLDERS.finditer(message))
        longest = len(PLACEHOLDERS.sub("", message)) + sum(
            LONGEST_ATTRIBUTE_TEXT if m["key"] else MAX_NAME_LENGTH for m in placeholders)
        if longest > MAX_MESSAGE_LENGTH:
            raise ValueError(f"may reach {longest} characters once personalised (names are up to {MAX_NAME_LENGTH} "
                             f"characters, attribute values up to {LONGEST_ATTRIBUTE_TEXT}); "
                             f"the vendor takes {MAX_MESSAGE_LENGTH}")
        return message


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
    # Why a log FAILED: the vendor's reason, no_receipt, send_failed, rejected, ...
    reason: str | None = None


class CampaignDetail(Campaign):
    logs: Page[Log]


class Recipient(InputModel):
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=254)
    phone: str | None = Field(default=None, max_length=32)


class VendorSendIn(InputModel):
    log_id: ObjectIdStr
    to: Recipient
    message: str = Field(min_length=1, max_length=MAX_MESSAGE_LENGTH)


class VendorBatchIn(InputModel):
    messages: list[VendorSendIn] = Field(min_length=1, max_length=100)


class VendorAccepted(BaseModel):
    vendor_message_id: str
    status: Literal["ACCEPTED"] = "ACCEPTED"


class VendorResult(VendorAccepted):
    log_id: str


class VendorBatchAccepted(BaseModel):
    results: list[VendorResult]


class VendorStatus(BaseModel):
    vendor_message_id: str
    log_id: str
    status: Literal["ACCEPTED", "SENT", "FAILED"]


class ReceiptIn(InputModel):
    vendor_message_id: str = Field(min_length=1, max_length=100)
    log_id: ObjectIdStr
    status: Literal["SENT", "FAILED"]
    timestamp: IsoTime
    reason: str | None = Field(default=None, max_length=500)


class ReceiptBatchIn(InputModel):
    receipts: list[ReceiptIn] = Field(min_length=1, max_length=100)
