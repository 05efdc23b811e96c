"""Campaign, communication log and delivery receipt shapes of API.md."""
from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from crm.consent.links import LONGEST_URL
from crm.models.common import InputModel, IsoTime, ObjectIdStr, Page
from crm.models.customers import ATTRIBUTE_KEY, MAX_ATTRIBUTE_TEXT, MAX_NAME_LENGTH

QUEUED, SENT, FAILED, SKIPPED = "QUEUED", "SENT", "FAILED", "SKIPPED"
SENDING, COMPLETED = "SENDING", "COMPLETED"
# The longest message the vendor takes.
MAX_MESSAGE_LENGTH = 2000
MAX_SUBJECT_LENGTH = 200
# A subject once personalised: one header line (RFC 5322 allows 998 characters).
MAX_PERSONALISED_SUBJECT = 900
# {{name}}, {{first_name}}, {{unsubscribe_url}} and {{attributes.<key>}} (group "key"); any other {{...}} is text
# like the rest.
PLACEHOLDERS = re.compile(r"\{\{(name|first_name|unsubscribe_url|attributes\.(?P<key>%s))\}\}"
                          % ATTRIBUTE_KEY.removeprefix("^").removesuffix("$"))
# The longest text an attribute value becomes in a message: a string is at most MAX_ATTRIBUTE_TEXT; a number
# (|n| <= 1e15, at most 17 significant digits) at most 24, as "-1.2345678901234567e-300"; a time 24, as
# "2026-11-25T10:00:00.000Z"; a boolean 5, "false".
LONGEST_NUMBER_TEXT = 24
LONGEST_TIME_TEXT = len("2026-11-25T10:00:00.000Z")
LONGEST_ATTRIBUTE_TEXT = max(MAX_ATTRIBUTE_TEXT, LONGEST_NUMBER_TEXT, LONGEST_TIME_TEXT)


def longest_personalised(template: str) -> int:
    """The longest text a template can become: each placeholder at the longest of what it stands for."""
    longest = {"name": MAX_NAME_LENGTH, "first_name": MAX_NAME_LENGTH, "unsubscribe_url": LONGEST_URL}
    return len(PLACEHOLDERS.sub("", template)) + sum(
        LONGEST_ATTRIBUTE_TEXT if m["key"] else longest[m.group(1)] for m in PLACEHOLDERS.finditer(template))


class CampaignIn(InputModel):
    name: str = Field(min_length=1, max_length=200)
    segment_id: ObjectIdStr
    message: str = Field(min_length=1, max_length=1600)
    # The e-mail's subject (required when the channel is e-mail), personalised like the message.
    subject: str | None = Field(default=None, min_length=1, max_length=MAX_SUBJECT_LENGTH)

    @field_validator("message")
    @classmethod
    def _fits_once_personalised(cls, message: str) -> str:
        """Every recipient's message must reach the vendor: each placeholder may become a name, an attribute's
        text or an unsubscribe link of full length."""
        longest = longest_personalised(message)
        if longest > MAX_MESSAGE_LENGTH:
            raise ValueError(f"may reach {longest} characters once personalised (names are up to {MAX_NAME_LENGTH} "
                             f"characters, attribute values up to {LONGEST_ATTRIBUTE_TEXT}, the unsubscribe link "
                             f"up to {LONGEST_URL}); the vendor takes {MAX_MESSAGE_LENGTH}")
        return message

    @field_validator("subject")
    @classmethod
    def _subject_is_one_line(cls, subject: str | None) -> str | None:
        if subject is not None and len(subject.splitlines()) > 1 or subject and subject != subject.strip("\r\n"):
            raise ValueError("must be one line")
        if subject is not None and longest_personalised(subject) > MAX_PERSONALISED_SUBJECT:
            raise ValueError(f"may reach {longest_personalised(subject)} characters once personalised; a subject "
                             f"takes {MAX_PERSONALISED_SUBJECT}")
        return subject


class Stats(BaseModel):
    audience: int = 0
    queued: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    # What the e-mail channel reports back (each message counted once).
    delivered: int = 0
    bounced: int = 0
    complained: int = 0
    opened: int = 0
    clicked: int = 0


class Campaign(BaseModel):
    id: str
    name: str
    segment_id: str
    message: str
    subject: str | None = None
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
    # Why a log FAILED (the vendor's reason, no_receipt, send_failed, bounced, ...) or was SKIPPED (not_subscribed,
    # unsubscribed, bounced, complained, manual, erased).
    reason: str | None = None
    opened_at: IsoTime | None = None
    clicked_at: IsoTime | None = None


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


class SendRecordIn(VendorSendIn):
    """A send message's record: what the vendor is sent, and for e-mail its subject and unsubscribe link."""
    subject: str | None = Field(default=None, max_length=MAX_PERSONALISED_SUBJECT)
    unsubscribe_url: str | None = Field(default=None, max_length=LONGEST_URL)


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
