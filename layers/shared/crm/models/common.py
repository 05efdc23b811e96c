"""Types and helpers every resource model uses."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated, Any, Generic, TypeVar

from bson import ObjectId
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic.fields import FieldInfo

from crm.errors import InvalidInput

T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def to_iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# An ObjectId as text: what `_object_id` accepts, for the schema and for path matching.
OBJECT_ID_HEX = "[0-9a-fA-F]{24}"


def _object_id(value: str) -> str:
    if not ObjectId.is_valid(value) or len(value) != 24:
        raise ValueError("must be a 24-hex ObjectId")
    return value.lower()


# Identity is case-insensitive, so the whole address is lower-cased, not only the domain.
Email = Annotated[EmailStr, Field(max_length=254), AfterValidator(str.lower)]
ObjectIdStr = Annotated[str, AfterValidator(_object_id), Field(json_schema_extra={"pattern": f"^{OBJECT_ID_HEX}$"})]

ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _iso_text(value: Any) -> Any:
    """Times are ISO 8601 text (API.md); a bare number would otherwise pass as seconds since 1970."""
    if isinstance(value, (int, float)) or (isinstance(value, str) and not ISO_DATE.match(value)):
        raise ValueError("must be an ISO 8601 time with a zone, such as 2026-11-25T10:00:00Z")
    return value


def _in_utc(value: datetime) -> datetime:
    """The instant in UTC, as it is stored; an offset that carries it past year 1 or 9999 has none."""
    try:
        return value.astimezone(timezone.utc)
    except OverflowError as exc:
        raise ValueError("must be a time between years 1 and 9999 in UTC") from exc


IsoTime = Annotated[AwareDatetime, BeforeValidator(_iso_text), AfterValidator(_in_utc),
                    PlainSerializer(to_iso, return_type=str, when_used="json")]

MAX_MONEY = 1e12
MAX_COUNT = 10**9
Money = Annotated[float, Field(ge=0, le=MAX_MONEY, strict=True, allow_inf_nan=False)]


def _integral(value: Any) -> Any:
    """JSON has one kind of number: 3.0 is the whole number 3, as JSON Schema says; 3.5, "3" and true are not."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


WholeNumber = Annotated[int, BeforeValidator(_integral), Field(strict=True)]
Count = Annotated[WholeNumber, Field(ge=0, le=MAX_COUNT)]
# The same ranges for query parameters, which arrive as text and so are parsed rather than taken strictly. The bound
# also keeps a filter to what pymongo can encode: an integer beyond 64 bits cannot be, and 1e400 would be infinity.
MoneyParam = Annotated[float, Field(ge=0, le=MAX_MONEY, allow_inf_nan=False)]
CountParam = Annotated[int, Field(ge=0, le=MAX_COUNT)]


class InputModel(BaseModel):
    """Text fields are trimmed after their limits are checked, so a limit means what the OpenAPI document says it
    means of the text as sent; a text that is shorter than its minimum once trimmed is refused. Only fields that
    are text themselves: what a field of another type holds (a rule tree) is that type's to read."""
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _trim_text(cls, value: Any, info: ValidationInfo) -> Any:
        if type(value) is not str:  # noqa: E721 - an enum member is a str too, and must stay a member
            return value
        trimmed, shortest = value.strip(), _min_length(cls.model_fields[info.field_name])
        if len(trimmed) < shortest:
            raise ValueError("must not be blank" if shortest == 1 else
                             f"must have at least {shortest} characters besides leading and trailing spaces")
        return trimmed


def _min_length(field: FieldInfo) -> int:
    return max((getattr(item, "min_length", None) or 0 for item in field.metadata), default=0)


class Accepted(BaseModel):
    accepted: int


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


def first_problem(exc: Exception) -> str:
    """One line naming the first bad field, for logs about queued records (never the values)."""
    if isinstance(exc, ValidationError) and exc.errors():
        error = exc.errors()[0]
        return f"{'.'.join(map(str, error['loc'])) or 'record'}: {error['msg']}"
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def validate_one_or_batch(payload: Any, model: type[BaseModel], batch_key: str, max_items: int) -> list[BaseModel]:
    """A single object, or `{batch_key: [...]}` with 1..max_items of them; errors name each bad field."""
    if isinstance(payload, dict) and batch_key in payload:
        extra = sorted(set(payload) - {batch_key})
        if extra:
            raise InvalidInput.for_field(("body", extra[0]), "unexpected field")
        entries = payload[batch_key]
        if not isinstance(entries, list):
            raise InvalidInput.for_field(("body", batch_key), "must be a list")
        if not 1 <= len(entries) <= max_items:
            raise InvalidInput.for_field(("body", batch_key), f"must hold 1 to {max_items} entries")
        prefix: tuple[str | int, ...] = ("body", batch_key)
    elif isinstance(payload, dict):
        entries, prefix = [payload], ("body",)
    else:
        raise InvalidInput.for_field(("body",), "must be a JSON object")

    valid, details = [], []
    for index, entry in enumerate(entries):
        loc = prefix + (index,) if len(prefix) > 1 else prefix
        try:
            valid.append(model.model_validate(entry))
        except ValidationError as exc:
            details.extend({"loc": [*loc, *err["loc"]], "msg": err["msg"]} for err in exc.errors())
    if details:
        fields = ", ".join(".".join(map(str, d["loc"])) for d in details[:5])
        raise InvalidInput(f"Invalid input: {fields}", details)
    return valid
