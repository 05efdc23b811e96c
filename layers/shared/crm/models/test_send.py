"""The test send of API.md: a campaign's message, or its variants, sent at once to a few CRM users."""
from __future__ import annotations

from pydantic import BaseModel, Field, field_validator, model_validator

from crm.errors import InvalidInput
from crm.models.campaigns import MAX_SUBJECT_LENGTH, Variant, check_message, check_subject
from crm.models.common import Email, InputModel, ObjectIdStr

MAX_ADDRESSES = 5


class TestSendIn(InputModel):
    """A message and its subject as a campaign takes them, or 2–4 variants each with its own; personalised with
    `customer_id`'s customer, or sample values."""
    to: list[Email] = Field(min_length=1, max_length=MAX_ADDRESSES)
    message: str | None = Field(default=None, min_length=1, max_length=1600)
    subject: str | None = Field(default=None, min_length=1, max_length=MAX_SUBJECT_LENGTH)
    variants: list[Variant] | None = Field(default=None, min_length=2, max_length=4)
    customer_id: ObjectIdStr | None = None

    _subject = field_validator("subject")(check_subject)

    @field_validator("message")
    @classmethod
    def _fits_once_personalised(cls, message: str | None) -> str | None:
        # check_message takes text only: an explicit null is an absent message, left to _one_message.
        return message if message is None else check_message(message)

    @field_validator("to")
    @classmethod
    def _each_once(cls, to: list[str]) -> list[str]:
        for index, address in enumerate(to):
            if address in to[:index]:
                raise InvalidInput.for_field(("body", "to", index), "listed twice")
        return to

    @field_validator("variants")
    @classmethod
    def _named_once(cls, variants: list[Variant] | None) -> list[Variant] | None:
        names = [v.name for v in variants or []]
        if len(set(names)) != len(names):
            raise ValueError("variant names must differ")
        return variants

    @model_validator(mode="after")
    def _one_message(self) -> TestSendIn:
        # The same shape as a campaign's: with variants, each variant carries its own subject.
        if (self.message is None) == (self.variants is None):
            raise InvalidInput.for_field(("body", "message"), "give either message or variants")
        if self.variants is not None and self.subject is not None:
            raise InvalidInput.for_field(("body", "subject"), "with variants, each variant has its own subject")
        return self

    def drafts(self) -> list[dict[str, str | None]]:
        """The variants, or the one message as a variant without a name."""
        if self.variants is not None:
            return [v.model_dump() for v in self.variants]
        return [{"name": None, "message": self.message, "subject": self.subject}]


class TestSent(BaseModel):
    to: str
    variant: str | None = None
    vendor_message_id: str


class TestSendOut(BaseModel):
    sent: list[TestSent]
