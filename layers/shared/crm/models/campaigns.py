"""Campaign, communication log and delivery receipt shapes of API.md."""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import available_timezones

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from crm.consent.links import LONGEST_URL
from crm.models.common import InputModel, IsoTime, ObjectIdStr, Page, WholeNumber
from crm.models.customers import ATTRIBUTE_KEY, MAX_ATTRIBUTE_TEXT, MAX_NAME_LENGTH

QUEUED, SENT, FAILED, SKIPPED = "QUEUED", "SENT", "FAILED", "SKIPPED"
SCHEDULED, SENDING, PAUSED, COMPLETED, CANCELLED = "SCHEDULED", "SENDING", "PAUSED", "COMPLETED", "CANCELLED"
# The reason of a control group's log: SKIPPED, no message, yet its orders count for the control.
SKIPPED_CONTROL = "control"
CAMPAIGN_STATUSES = (SCHEDULED, QUEUED, SENDING, PAUSED, COMPLETED, CANCELLED)
# How far ahead a campaign may be scheduled.
MAX_SCHEDULE_AHEAD = timedelta(days=365)
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


def check_message(message: str) -> str:
    """Every recipient's message must reach the vendor: each placeholder may become a name, an attribute's text or
    an unsubscribe link of full length."""
    longest = longest_personalised(message)
    if longest > MAX_MESSAGE_LENGTH:
        raise ValueError(f"may reach {longest} characters once personalised (names are up to {MAX_NAME_LENGTH} "
                         f"characters, attribute values up to {LONGEST_ATTRIBUTE_TEXT}, the unsubscribe link "
                         f"up to {LONGEST_URL}); the vendor takes {MAX_MESSAGE_LENGTH}")
    return message


def check_subject(subject: str | None) -> str | None:
    if subject is not None and len(subject.splitlines()) > 1 or subject and subject != subject.strip("\r\n"):
        raise ValueError("must be one line")
    if subject is not None and longest_personalised(subject) > MAX_PERSONALISED_SUBJECT:
        raise ValueError(f"may reach {longest_personalised(subject)} characters once personalised; a subject "
                         f"takes {MAX_PERSONALISED_SUBJECT}")
    return subject


def is_time_zone(name: str) -> bool:
    """An IANA zone name the runtime knows (a recipient's `attributes.time_zone` is used only then)."""
    return name in _ZONES


_ZONES = frozenset(available_timezones())
HH_MM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class SendWindow(InputModel):
    """Hours in which messages are handed over, in each recipient's time zone (else this one); from > to spans
    midnight."""
    from_: str = Field(alias="from", pattern=HH_MM)
    to: str = Field(pattern=HH_MM)
    time_zone: str = Field(min_length=1, max_length=64)

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        if not is_time_zone(name):
            raise ValueError("must be an IANA time zone name, such as Asia/Kolkata")
        return name

    @model_validator(mode="after")
    def _not_empty(self) -> SendWindow:
        if self.from_ == self.to:
            raise ValueError("from and to must differ")
        return self


class Variant(InputModel):
    name: str = Field(min_length=1, max_length=50)
    message: str = Field(min_length=1, max_length=1600)
    subject: str | None = Field(default=None, min_length=1, max_length=MAX_SUBJECT_LENGTH)

    _message = field_validator("message")(check_message)
    _subject = field_validator("subject")(check_subject)


class VariantTest(InputModel):
    """Only `percent` % of the audience gets the variants; `minutes` after the last of them was sent, the variant
    with the highest rate per recipient wins and the rest of the audience gets it."""
    percent: WholeNumber = Field(ge=1, le=50)
    minutes: WholeNumber = Field(ge=1, le=10080)
    win_by: Literal["opened", "clicked", "converted", "revenue"]


class CampaignIn(InputModel):
    name: str = Field(min_length=1, max_length=200)
    segment_id: ObjectIdStr
    # A/B: each recipient gets one of these instead of `message`/`subject` (read before them, which check it).
    variants: list[Variant] | None = Field(default=None, min_length=2, max_length=4)
    # Checked also when absent: a campaign has either a message or variants.
    message: str | None = Field(default=None, min_length=1, max_length=1600, validate_default=True)
    # The e-mail's subject (required when the channel is e-mail), personalised like the message.
    subject: str | None = Field(default=None, min_length=1, max_length=MAX_SUBJECT_LENGTH)
    send_at: IsoTime | None = None
    rate_per_minute: WholeNumber | None = Field(default=None, ge=1, le=1_000_000)
    send_window: SendWindow | None = None
    test: VariantTest | None = None
    control_percent: WholeNumber = Field(default=0, ge=0, le=50)
    ignore_frequency_cap: bool = Field(default=False, strict=True)

    @field_validator("variants")
    @classmethod
    def _named_once(cls, variants: list[Variant] | None) -> list[Variant] | None:
        names = [v.name for v in variants or []]
        if len(set(names)) != len(names):
            raise ValueError("variant names must differ")
        return variants

    @field_validator("message")
    @classmethod
    def _message_or_variants(cls, message: str | None, info: ValidationInfo) -> str | None:
        if "variants" not in info.data:
            return message  # the variants were refused: that is the error to name
        if (message is None) == (info.data["variants"] is None):
            raise ValueError("give either message or variants")
        return message if message is None else check_message(message)

    @field_validator("subject")
    @classmethod
    def _subject_of_message(cls, subject: str | None, info: ValidationInfo) -> str | None:
        if subject is not None and info.data.get("variants") is not None:
            raise ValueError("with variants, each variant has its own subject")
        return check_subject(subject)

    @field_validator("send_at")
    @classmethod
    def _within_a_year(cls, send_at: datetime | None) -> datetime | None:
        if send_at is not None and send_at - datetime.now(send_at.tzinfo) > MAX_SCHEDULE_AHEAD:
            raise ValueError("must be at most 365 days ahead")
        return send_at

    @field_validator("test")
    @classmethod
    def _of_variants(cls, test: VariantTest | None, info: ValidationInfo) -> VariantTest | None:
        if test is not None and not info.data.get("variants"):
            raise ValueError("a test needs variants")
        return test

    def messages(self) -> list[dict[str, str | None]]:
        """The variants, or the one message as a variant without a name."""
        if self.variants is not None:
            return [v.model_dump() for v in self.variants]
        return [{"name": None, "message": self.message, "subject": self.subject}]


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
    # Recipients who unsubscribed through their message's link, had an order attributed (v3), and those orders' sum.
    unsubscribed: int = 0
    converted: int = 0
    revenue: float = 0.0

    @field_validator("revenue")
    @classmethod
    def _to_the_cent(cls, revenue: float) -> float:
        return round(revenue, 2)  # sums of floats carry noise past the cent


class VariantOut(BaseModel):
    name: str
    message: str
    subject: str | None = None


class Campaign(BaseModel):
    id: str
    name: str
    segment_id: str
    # None when the campaign has variants.
    message: str | None
    subject: str | None = None
    status: Literal["SCHEDULED", "QUEUED", "SENDING", "PAUSED", "COMPLETED", "CANCELLED"]
    created_at: IsoTime
    stats: Stats
    send_at: IsoTime | None = None
    rate_per_minute: int | None = None
    send_window: dict[str, str] | None = None
    variants: list[VariantOut] | None = None
    test: VariantTest | None = None
    # The variant the test picked; None before (or without a test).
    winner: str | None = None
    control_percent: int = 0
    ignore_frequency_cap: bool = False


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
    variant: str | None = None


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
