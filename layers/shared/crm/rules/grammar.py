"""The rule language: its fields, operators and bounds, the parsed tree, and validation that names the path of
every bad part (rules.and[1].op).

Behaviour rules (v3) name a window of `days` (1 to 730): "in the last N days" means on one of the last N UTC calendar
days, today included, i.e. an event whose UTC day number d (crm.rules.activity.day_number) has d > today - N.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping, Union

from bson import ObjectId

from crm.errors import InvalidInput
from crm.rules.activity import MAX_DAYS

# The customer's own fields (v1, v2); behaviour over a window of days (v3) are BEHAVIOUR_FIELDS.
NUMBER_FIELDS = ("spend", "visits", "inactive_days", "signup_days")
LIST_FIELDS = ("tags", "skus")
BOOLEAN_FIELDS = ("subscribed",)
FIELDS = (*NUMBER_FIELDS, *LIST_FIELDS, *BOOLEAN_FIELDS)
# Counted or summed over the window: orders placed, their amounts, campaign messages sent, opened, clicked.
WINDOW_NUMBER_FIELDS = ("orders", "order_spend", "messages_received", "opened", "clicked")
BOUGHT = "bought"
CAMPAIGN = "campaign"
BEHAVIOUR_FIELDS = (*WINDOW_NUMBER_FIELDS, BOUGHT, CAMPAIGN)
# What a campaign rule asks of the customer's message of that campaign (received = it was SENT).
CAMPAIGN_EVENTS = ("received", "opened", "clicked", "converted")
CAMPAIGN_OPS = ("==", "!=")
ATTRIBUTE_PREFIX = "attributes."
ATTRIBUTE_FIELD = re.compile(r"^attributes\.[a-z][a-z0-9_]{0,39}$")
COMPARISONS = (">", ">=", "<", "<=", "==", "!=")
NUMBER_OPS = (*COMPARISONS, "between")
STRING_OPS = ("==", "!=", "in", "not_in", "starts_with")
TIME_OPS = ("before", "after", "between")
BOOLEAN_OPS = ("==",)
LIST_OPS = ("has_any", "has_all", "has_none")
EXISTS = "exists"
OPERATORS = tuple(dict.fromkeys((*NUMBER_OPS, *STRING_OPS, *TIME_OPS, *LIST_OPS, EXISTS)))
OPS_BY_TYPE = {"number": NUMBER_OPS, "string": STRING_OPS, "time": TIME_OPS, "boolean": BOOLEAN_OPS,
               "list": LIST_OPS}
GROUP_KINDS = ("and", "or")
NOT = "not"
MAX_DEPTH = 5
MAX_RULES = 50
MAX_VALUES = 100
MAX_ERRORS = 50
MAX_TEXT = 200
MAX_VALUE = 1e12
MAX_ATTRIBUTE_NUMBER = 1e15
# A century: `now - inactive_days` must stay a date (past about 739,000 days it is before year 1).
MAX_INACTIVE_DAYS = 36_600
DAY_FIELDS = {"inactive_days": "last_active", "signup_days": "created_at"}
WHOLE_NUMBER_FIELDS = {"visits", "inactive_days", "signup_days", "orders", "messages_received", "opened",
                       "clicked"}
DAY = timedelta(days=1)
OPT_OUT, OPT_IN = "opt_out", "opt_in"

Loc = tuple[Union[str, int], ...]


@dataclass(frozen=True)
class Rule:
    field: str
    op: str
    value: Any
    type: str  # number | string | time | boolean | list | any (exists)

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "op": self.op, "value": json_value(self.value)}


@dataclass(frozen=True)
class Behaviour:
    """A v3 rule: what the customer did in the last `days` days, or (field `campaign`, no days) what became of the
    message of one campaign."""
    field: str
    op: str
    value: Any
    days: int | None = None
    campaign_id: str | None = None

    @property
    def type(self) -> str:
        return "list" if self.field == BOUGHT else ("event" if self.field == CAMPAIGN else "number")

    def to_json(self) -> dict[str, Any]:
        named = {"campaign_id": self.campaign_id} if self.campaign_id else {"days": self.days}
        return {"field": self.field, **named, "op": self.op, "value": json_value(self.value)}


@dataclass(frozen=True)
class Not:
    child: Node

    def to_json(self) -> dict[str, Any]:
        return {NOT: self.child.to_json()}


@dataclass(frozen=True)
class Group:
    kind: str
    children: tuple[Node, ...]

    def to_json(self) -> dict[str, Any]:
        return {self.kind: [child.to_json() for child in self.children]}


Node = Union[Rule, Behaviour, Group, Not]


def json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, tuple):
        return [json_value(v) for v in value]
    return value


def empty_ranges(node: Node) -> list[str]:
    """The number fields an `and` group bounds from both sides with nothing between ("at least 10 and at most 5"):
    valid rules that no one can match, which a drafted rule set never means."""
    if isinstance(node, Not):
        return empty_ranges(node.child)
    if not isinstance(node, Group):
        return []
    found = [field for child in node.children for field in empty_ranges(child)]
    if node.kind == "and":
        lows: dict[str, tuple[Any, bool]] = {}
        highs: dict[str, tuple[Any, bool]] = {}
        for rule in node.children:
            if isinstance(rule, (Rule, Behaviour)) and rule.type == "number" and rule.op in (">", ">=", "<", "<="):
                # A behaviour's count over one window says nothing about another window's.
                what = rule.field if isinstance(rule, Rule) else f"{rule.field} in the last {rule.days} days"
                bounds, bound = (lows, (rule.value, rule.op == ">")) if rule.op[0] == ">" else (
                    highs, (rule.value, rule.op == "<"))
                held = bounds.get(what)
                tighter = held is None or (bound[0] > held[0] if bounds is lows else bound[0] < held[0])
                bounds[what] = bound if tighter else held
        for field in lows.keys() & highs.keys():
            (low, low_strict), (high, high_strict) = lows[field], highs[field]
            if low > high or (low == high and (low_strict or high_strict)):
                found.append(field)
    return found


def parse(raw: Any, loc: Loc = ("body", "rules"), attributes: Mapping[str, str] | None = None) -> Node:
    """A rule or group from JSON; every problem is reported with its path, e.g. rules.and[1].op.

    `attributes` (the registry's key → type) makes a rule on an attribute the registry does not know, or of
    another type, a 422; without it (rules saved earlier) an attribute rule's type is read from its op and value.
    """
    errors: list[dict[str, Any]] = []
    # Counted while parsing: a body of half a million rules stops at the 51st, not after reading them all.
    budget = [MAX_RULES]
    node = _parse(raw, loc, 1, errors, attributes, budget)
    if budget[0] < 0:
        errors = [{"loc": list(loc), "msg": f"at most {MAX_RULES} rules"}]
    if errors:
        errors = errors[:MAX_ERRORS]
        summary = "; ".join(f"{path(e['loc'])}: {e['msg']}" for e in errors[:3])
        raise InvalidInput(f"Invalid {summary}", errors)
    assert node is not None
    return node


def attribute_keys(raw: Any) -> set[str]:
    """The attribute keys a rule tree names, read before it is parsed (to look only those up in the registry);
    at most the first MAX_RULES rules' worth, as parse reads no more."""
    keys: set[str] = set()
    pending, seen = [raw], 0
    while pending and seen < MAX_RULES * MAX_DEPTH * 2:
        node = pending.pop()
        seen += 1
        if isinstance(node, dict):
            field = node.get("field")
            if isinstance(field, str) and ATTRIBUTE_FIELD.match(field):
                keys.add(field[len(ATTRIBUTE_PREFIX):])
            pending.extend(v for k, v in node.items() if k in (*GROUP_KINDS, NOT))
        elif isinstance(node, list):
            pending.extend(node[:MAX_RULES])
    return keys


def path(loc: list[str | int] | Loc) -> str:
    """`["body", "rules", "and", 1, "op"]` as people write it: `rules.and[1].op`."""
    text = ""
    for part in loc:
        if part == "body" and not text:
            continue
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _parse(raw: Any, loc: Loc, depth: int, errors: list[dict[str, Any]],
           attributes: Mapping[str, str] | None, budget: list[int]) -> Node | None:
    if budget[0] < 0 or len(errors) >= MAX_ERRORS:
        return None
    if not isinstance(raw, dict):
        errors.append({"loc": list(loc), "msg": "must be a rule, an and/or group or a not"})
        return None
    kinds = [k for k in (*GROUP_KINDS, NOT) if k in raw]
    if not kinds:
        budget[0] -= 1
        return _parse_rule(raw, loc, errors, attributes) if budget[0] >= 0 else None
    if len(raw) != 1:
        extra = sorted(set(raw) - {kinds[0]}, key=str)[0]
        errors.append({"loc": [*loc, extra], "msg": "a group holds exactly one of 'and', 'or' or 'not'"})
        return None
    kind = kinds[0]
    if depth > MAX_DEPTH:
        errors.append({"loc": [*loc, kind], "msg": f"groups nest at most {MAX_DEPTH} deep"})
        return None
    if kind == NOT:
        child = _parse(raw[NOT], (*loc, NOT), depth + 1, errors, attributes, budget)
        return Not(child) if child is not None else None
    items = raw[kind]
    if not isinstance(items, list) or not items:
        errors.append({"loc": [*loc, kind], "msg": "must be a non-empty list"})
        return None
    if len(items) > MAX_RULES:
        errors.append({"loc": [*loc, kind], "msg": f"at most {MAX_RULES} rules"})
        return None
    children = [_parse(item, (*loc, kind, i), depth + 1, errors, attributes, budget) for i, item in enumerate(items)]
    if any(child is None for child in children):
        return None
    return Group(kind, tuple(children))  # type: ignore[arg-type]


def _parse_rule(raw: dict, loc: Loc, errors: list[dict[str, Any]],
                attributes: Mapping[str, str] | None) -> Rule | Behaviour | None:
    before = len(errors)
    field, op, value = _name(raw.get("field")), _name(raw.get("op")), raw.get("value")
    keys = ("field", *{CAMPAIGN: ("campaign_id",)}.get(field, ("days",) if field in BEHAVIOUR_FIELDS else ()),
            "op", "value")
    for key in sorted(set(raw) - set(keys), key=str):
        errors.append({"loc": [*loc, key], "msg": f"unexpected key; {'a' if field not in BEHAVIOUR_FIELDS else field} "
                                                  f"rule has {', '.join(keys[:-1])} and {keys[-1]}"})
    if field is None or not (field in FIELDS or field in BEHAVIOUR_FIELDS or ATTRIBUTE_FIELD.match(field)):
        errors.append({"loc": [*loc, "field"],
                       "msg": f"must be one of {', '.join((*FIELDS, *BEHAVIOUR_FIELDS))} or attributes.<key>"})
        return None
    if op not in OPERATORS:
        errors.append({"loc": [*loc, "op"], "msg": f"must be one of {' '.join(OPERATORS)}"})
        return None
    if field in BEHAVIOUR_FIELDS:
        behaviour = _parse_behaviour(raw, field, op, value, loc, errors)
        return behaviour if len(errors) == before else None
    kind = _field_type(field, op, value)
    if field.startswith(ATTRIBUTE_PREFIX) and attributes is not None:
        key = field[len(ATTRIBUTE_PREFIX):]
        if key not in attributes:
            errors.append({"loc": [*loc, "field"], "msg": f"no customer has attribute {key} yet"})
            return None
        if kind not in ("any", attributes[key]):
            errors.append({"loc": [*loc, "value"], "msg": f"attribute {key} is a {attributes[key]}; "
                                                          f"this rule compares a {kind}"})
            return None
    if kind != "any" and op not in OPS_BY_TYPE[kind]:
        errors.append({"loc": [*loc, "op"], "msg": f"{field} ({kind}) takes {' '.join(OPS_BY_TYPE[kind])}"})
        return None
    checked = _value(field, op, value, kind, [*loc, "value"], errors)
    if len(errors) > before:
        return None
    return Rule(field, op, checked, kind)


def _parse_behaviour(raw: dict, field: str, op: str, value: Any, loc: Loc,
                     errors: list[dict[str, Any]]) -> Behaviour | None:
    if field == CAMPAIGN:
        campaign_id = raw.get("campaign_id")
        if not (isinstance(campaign_id, str) and len(campaign_id) == 24 and ObjectId.is_valid(campaign_id)):
            errors.append({"loc": [*loc, "campaign_id"], "msg": "must be a campaign id: 24 hexadecimal characters"})
        if op not in CAMPAIGN_OPS:
            errors.append({"loc": [*loc, "op"], "msg": f"{field} takes {' '.join(CAMPAIGN_OPS)}"})
        elif not (isinstance(value, str) and value in CAMPAIGN_EVENTS):
            errors.append({"loc": [*loc, "value"], "msg": f"must be one of {', '.join(CAMPAIGN_EVENTS)}"})
        return Behaviour(field, op, value, campaign_id=campaign_id.lower()) if isinstance(campaign_id, str) else None
    days = _days(raw.get("days"))
    if days is None:
        errors.append({"loc": [*loc, "days"], "msg": f"must be a whole number of days from 1 to {MAX_DAYS}"})
    kind = "list" if field == BOUGHT else "number"
    if op not in OPS_BY_TYPE[kind]:
        errors.append({"loc": [*loc, "op"], "msg": f"{field} ({kind}) takes {' '.join(OPS_BY_TYPE[kind])}"})
        return None
    return Behaviour(field, op, _value(field, op, value, kind, [*loc, "value"], errors), days=days)


def _days(value: Any) -> int | None:
    """A window's length: a whole number of days, 1 to MAX_DAYS (30.0 is 30)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= value <= MAX_DAYS:
        return None
    return int(value) if value == int(value) else None


def _field_type(field: str, op: str, value: Any) -> str:
    """number | string | time | boolean | list, or "any" for exists. An attribute's type is read from the rule."""
    if field in NUMBER_FIELDS:
        return "number"
    if field in LIST_FIELDS:
        return "list"
    if field in BOOLEAN_FIELDS:
        return "boolean"
    if op == EXISTS:
        return "any"
    if op in ("before", "after"):
        return "time"
    sample = value[0] if op == "between" and isinstance(value, list) and value else value
    if op == "between":
        return "time" if isinstance(sample, str) else "number"
    if op in ("in", "not_in", "starts_with"):
        return "string"
    if isinstance(sample, bool):
        return "boolean"
    if isinstance(sample, (int, float)):
        return "number"
    return "string"


def _value(field: str, op: str, value: Any, kind: str, loc: list, errors: list[dict[str, Any]]) -> Any:
    def bad(msg: str) -> None:
        errors.append({"loc": loc, "msg": msg})

    if op == EXISTS:
        return value if isinstance(value, bool) else bad("must be true or false")
    if kind == "boolean":
        return value if isinstance(value, bool) else bad("must be true or false")
    if kind == "list":
        return _strings(value, bad, lower=field == "tags")
    if kind == "string":
        if op in ("in", "not_in"):
            return _strings(value, bad)
        if not _text(value, 1 if op == "starts_with" else 0):
            return bad(f"must be text of {'1' if op == 'starts_with' else '0'} to {MAX_TEXT} characters")
        return value
    if kind == "time":
        if op == "between":
            pair = _pair(value, _time, bad)
            return pair
        return _time(value) or bad("must be an ISO 8601 time with a zone, such as 2026-11-25T10:00:00Z")
    if op == "between":
        return _pair(value, lambda v: _number(field, v), bad)
    number = _number(field, value)
    if number is None:
        return bad(_number_problem(field))
    return number


def _text(value: Any, min_length: int = 0) -> bool:
    """Text of the allowed length that the database can store (a lone surrogate cannot be UTF-8)."""
    if not isinstance(value, str) or not min_length <= len(value) <= MAX_TEXT:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _strings(value: Any, bad, lower: bool = False) -> Any:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_VALUES or not all(_text(v, 1) for v in value):
        return bad(f"must be a list of 1 to {MAX_VALUES} texts")
    return tuple(dict.fromkeys(v.lower() if lower else v for v in value))


def _pair(value: Any, convert, bad) -> Any:
    if not isinstance(value, list) or len(value) != 2:
        return bad("must be [low, high]")
    low, high = convert(value[0]), convert(value[1])
    if low is None or high is None:
        return bad("must be [low, high] of the field's kind")
    if low > high:
        return bad("low must not be above high")
    return (low, high)


def _number(field: str, value: Any) -> float | int | None:
    # An integer beyond a double (10**400) is out of range too, not an OverflowError.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or abs(value) > MAX_ATTRIBUTE_NUMBER:
        return None
    if not math.isfinite(value):
        return None
    if field.startswith(ATTRIBUTE_PREFIX):
        low, high = -MAX_ATTRIBUTE_NUMBER, MAX_ATTRIBUTE_NUMBER
    else:
        low, high = 0, (MAX_INACTIVE_DAYS if field in DAY_FIELDS else MAX_VALUE)
    if not low <= value <= high or (field in WHOLE_NUMBER_FIELDS and value != int(value)):
        return None
    return int(value) if value == int(value) and abs(value) < 2**53 else value


def _number_problem(field: str) -> str:
    if field.startswith(ATTRIBUTE_PREFIX):
        return f"must be a number between {-MAX_ATTRIBUTE_NUMBER:.0e} and {MAX_ATTRIBUTE_NUMBER:.0e}"
    if field in DAY_FIELDS:
        return f"must be a whole number between 0 and {MAX_INACTIVE_DAYS} (a century)"
    if field in WHOLE_NUMBER_FIELDS:
        return f"{field} compares with a whole number between 0 and {MAX_VALUE:.0e}"
    return f"must be a number between 0 and {MAX_VALUE:.0e}"


TIME_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:\d{2})$")


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not TIME_TEXT.match(value):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)
    except (ValueError, OverflowError):
        return None
    # The database keeps milliseconds: a rule's time is compared at the same precision as the stored ones.
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _name(value: Any) -> str | None:
    """A field or operator name is a string; an operator object or a list names nothing (and is no dict key)."""
    return value if isinstance(value, str) else None
