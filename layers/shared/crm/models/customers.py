"""Customer shapes of API.md."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    WithJsonSchema,
)

from crm import rules
from crm.models.common import Count, Email, InputModel, IsoTime, Money

MAX_BATCH = 1000
MAX_NAME_LENGTH = 200
MAX_ATTRIBUTES = 50
MAX_TAGS = 50
MAX_ATTRIBUTE_TEXT = 200
# Attribute numbers are bounded as money is, so a comparison with them stays exact in a double.
MAX_ATTRIBUTE_NUMBER = 1e15
ATTRIBUTE_KEY = r"^[a-z][a-z0-9_]{0,39}$"
TAG = r"^[a-z0-9][a-z0-9_-]{0,39}$"
# A tag as clients send it: compared and stored lower-cased.
TAG_ANY_CASE = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$"
# A time attribute is ISO 8601 text with a zone (the rules' own time text); any other text is a string attribute.
TIME_TEXT = rules.TIME_TEXT
ATTRIBUTE_TYPES = ("string", "number", "boolean", "time")

AttributeKey = Annotated[str, StringConstraints(pattern=ATTRIBUTE_KEY)]
AttributeNumber = Annotated[float, Field(ge=-MAX_ATTRIBUTE_NUMBER, le=MAX_ATTRIBUTE_NUMBER, allow_inf_nan=False,
                                         strict=True)]
# Trimmed after its limit is checked on the text as sent (as every input text is, crm.models.common.InputModel).
AttributeText = Annotated[str, StringConstraints(max_length=MAX_ATTRIBUTE_TEXT), AfterValidator(str.strip)]
AttributeValue = Union[StrictBool, AttributeNumber, AttributeText]
Tag = Annotated[str, BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v),
                StringConstraints(pattern=TAG), WithJsonSchema({"type": "string", "pattern": TAG_ANY_CASE})]


def attribute_type(value: Any) -> str:
    """The registry type of an ingested attribute value (None, which removes a key, has none)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, datetime) or (isinstance(value, str) and TIME_TEXT.match(value) and _is_time(value)):
        return "time"
    return "string"


def _is_time(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def ingest_version(accepted_at: datetime, seq: int) -> int:
    """Orders ingests: by when the API accepted them, then by their place in the request."""
    return int(accepted_at.timestamp() * 1000) * MAX_BATCH + seq


def version_after_ingests_until(moment: datetime) -> int:
    """The version of a write made at this moment (an unsubscribe) that no ingest accepted until then, to the
    millisecond, can overwrite, and every ingest accepted from the next millisecond on can. (MAX_BATCH would equal
    the next millisecond's first record, and a tie is not newer: that ingest would be lost.)"""
    return ingest_version(moment, MAX_BATCH - 1)


def newer(clock: str, version: int) -> dict[str, Any]:
    """True when this write came after the one that last wrote the field (a redelivery is not newer)."""
    return {"$lt": [{"$ifNull": [f"$versions.{clock}", -1]}, version]}


def versioned_write(stored: str, clock: str, value: Any, version: int) -> dict[str, Any]:
    """An update pipeline's $set of one field and its clock: both change only if this write is newer than the one
    that wrote the field last. `value` is an expression ({"$literal": ...} for data)."""
    return {stored: {"$cond": [newer(clock, version), value, f"${stored}"]},
            f"versions.{clock}": {"$cond": [newer(clock, version), version, f"$versions.{clock}"]}}


def _times_in_range(attributes: dict[str, Any] | None) -> dict[str, Any] | None:
    """A time attribute must be an instant of years 1 to 9999 in UTC, as a stored date is."""
    for value in (attributes or {}).values():
        if attribute_type(value) == "time":
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)
            except OverflowError as exc:
                raise ValueError("a time attribute must be between years 1 and 9999 in UTC") from exc
    return attributes


def _unique_tags(tags: list[str] | None) -> list[str] | None:
    return list(dict.fromkeys(tags)) if tags is not None else None


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
    # Merged key by key; a null removes the key.
    attributes: Annotated[dict[AttributeKey, AttributeValue | None] | None, AfterValidator(_times_in_range)] = Field(
        default=None, max_length=MAX_ATTRIBUTES)
    # Replace the stored tags; lower-cased, each once.
    tags: Annotated[list[Tag] | None, Field(max_length=MAX_TAGS)] = None
    email_consent: Literal["granted", "denied"] | None = None

    def model_post_init(self, _context: Any) -> None:
        self.tags = _unique_tags(self.tags)


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
    attributes: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    subscribed: bool = True


class AttributeInfo(BaseModel):
    key: str
    type: Literal[ATTRIBUTE_TYPES]  # type: ignore[valid-type]
    customers: int
    examples: list[Any]


class Attributes(BaseModel):
    items: list[AttributeInfo]
