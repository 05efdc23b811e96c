"""Segment shapes of API.md; the rules themselves are validated by crm.rules."""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, PlainValidator

from crm import rules
from crm.models.common import InputModel, IsoTime, ObjectIdStr
from crm.models.customers import Customer

# The rule language as the OpenAPI document states it, built from crm.rules' own names and bounds. These models only
# describe: crm.rules.parse validates, so its errors name the path of each bad part (rules.and[1].op). What a schema
# cannot say, parse alone checks: which operators and values fit which field (and which type an attribute has),
# groups nest at most rules.MAX_DEPTH deep and hold at most rules.MAX_RULES rules.
Operator = Literal[rules.OPERATORS]  # type: ignore[valid-type]
FieldName = Annotated[str, Field(pattern=f"^(?:{'|'.join(rules.FIELDS)}|attributes\\.[a-z][a-z0-9_]{{0,39}})$")]
Text = Annotated[str, Field(max_length=rules.MAX_TEXT)]
Values = Annotated[list[Union[float, Text]], Field(min_length=1, max_length=rules.MAX_VALUES)]
RuleValue = Union[bool, float, Text, Values]
Days = Annotated[int, Field(ge=1, le=rules.MAX_DAYS)]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RuleSchema(_Rule):
    """A number (spend, visits, inactive_days, signup_days, a number attribute) with > >= < <= == != or between
    [low, high]; text with == != in not_in starts_with; a time with before after between; a boolean with ==;
    tags and skus with has_any has_all has_none; any attribute with exists true/false."""
    field: FieldName
    op: Operator
    value: RuleValue


class WindowRuleSchema(_Rule):
    """(v3) Behaviour in the last `days` days, i.e. on one of the last `days` UTC calendar days, today included:
    orders, order_spend, messages_received, opened, clicked with > >= < <= == != or between [low, high];
    bought (SKUs) with has_any has_all has_none."""
    field: Literal[(*rules.WINDOW_NUMBER_FIELDS, rules.BOUGHT)]  # type: ignore[valid-type]
    days: Days
    op: Operator
    value: RuleValue


class CampaignRuleSchema(_Rule):
    """(v3) What became of one campaign's message to the customer: == or != received (a SENT log), opened, clicked,
    converted."""
    field: Literal[rules.CAMPAIGN]  # type: ignore[valid-type]
    campaign_id: ObjectIdStr
    op: Literal[rules.CAMPAIGN_OPS]  # type: ignore[valid-type]
    value: Literal[rules.CAMPAIGN_EVENTS]  # type: ignore[valid-type]


class AndGroup(_Rule):
    and_: list[RuleNode] = Field(alias="and", min_length=1, max_length=rules.MAX_RULES)


class OrGroup(_Rule):
    or_: list[RuleNode] = Field(alias="or", min_length=1, max_length=rules.MAX_RULES)


class NotGroup(_Rule):
    not_: RuleNode = Field(alias="not")


RuleNode = Union[RuleSchema, WindowRuleSchema, CampaignRuleSchema, AndGroup, OrGroup, NotGroup]
AndGroup.model_rebuild()
OrGroup.model_rebuild()
NotGroup.model_rebuild()


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
