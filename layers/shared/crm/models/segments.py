"""Segment shapes of API.md; the rules themselves are validated by crm.rules."""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, PlainValidator

from crm import rules
from crm.models.common import InputModel, IsoTime
from crm.models.customers import Customer

# The rule language as the OpenAPI document states it, built from crm.rules' own names and bounds. These models only
# describe: crm.rules.parse validates, so its errors name the path of each bad part (rules.and[1].op). What a schema
# cannot say, parse alone checks: groups nest at most rules.MAX_DEPTH deep and hold at most rules.MAX_RULES rules.
Operator = Literal[rules.OPERATORS]  # type: ignore[valid-type]
NumberField = Literal[tuple(f for f in rules.FIELDS if f not in rules.WHOLE_NUMBER_FIELDS)]  # type: ignore[misc]
WholeNumberField = Literal[tuple(f for f in rules.FIELDS  # type: ignore[misc]
                                 if f in rules.WHOLE_NUMBER_FIELDS and f != "inactive_days")]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NumberRule(_Rule):
    field: NumberField
    op: Operator
    value: float = Field(ge=0, le=rules.MAX_VALUE)


class WholeNumberRule(_Rule):
    field: WholeNumberField
    op: Operator
    value: int = Field(ge=0, le=rules.MAX_VALUE)


class InactiveDaysRule(_Rule):
    field: Literal["inactive_days"]
    op: Operator
    value: int = Field(ge=0, le=rules.MAX_INACTIVE_DAYS)


class AndGroup(_Rule):
    and_: list[RuleNode] = Field(alias="and", min_length=1)


class OrGroup(_Rule):
    or_: list[RuleNode] = Field(alias="or", min_length=1)


RuleNode = Union[NumberRule, WholeNumberRule, InactiveDaysRule, AndGroup, OrGroup]
AndGroup.model_rebuild()
OrGroup.model_rebuild()


def _an_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("must be a rule or an and/or group")
    return value


Rules = Annotated[dict[str, Any], PlainValidator(_an_object, json_schema_input_type=RuleNode)]
EXAMPLE_RULES = {"and": [{"field": "inactive_days", "op": ">", "value": 180},
                         {"field": "spend", "op": ">", "value": 5000}]}


class SegmentIn(InputModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "Lapsed big spenders", "description": "Inactive for 6 months and spent over 5,000",
         "rules": EXAMPLE_RULES}]})

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    rules: Rules


class PreviewIn(InputModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"rules": EXAMPLE_RULES}]})

    rules: Rules


class Segment(BaseModel):
    id: str
    name: str
    description: str | None
    rules: dict[str, Any]
    created_by: str
    created_at: IsoTime
    audience_size: int


class Preview(BaseModel):
    audience_size: int
    sample: list[Customer]
