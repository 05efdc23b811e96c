"""Segment rules: parsed and validated as API.md defines them, compiled to an index-friendly Mongo filter.

The one definition used by previews, saved segments and campaign audiences.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Union

from crm.errors import InvalidInput

FIELDS = ("spend", "visits", "inactive_days")
OPERATORS = (">", ">=", "<", "<=", "==", "!=")
GROUP_KINDS = ("and", "or")
MAX_DEPTH = 5
MAX_RULES = 100
MAX_VALUE = 1e12
# A century: `now - inactive_days` must stay a date (past about 739,000 days it is before year 1).
MAX_INACTIVE_DAYS = 36_600
WHOLE_NUMBER_FIELDS = {"visits", "inactive_days"}
DAY = timedelta(days=1)
_MONGO_OPERATORS = {">": "$gt", ">=": "$gte", "<": "$lt", "<=": "$lte"}

Loc = tuple[Union[str, int], ...]


@dataclass(frozen=True)
class Rule:
    field: str
    op: str
    value: float | int

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "op": self.op, "value": self.value}


@dataclass(frozen=True)
class Group:
    kind: str
    children: tuple[Rule | Group, ...]

    def to_json(self) -> dict[str, Any]:
        return {self.kind: [child.to_json() for child in self.children]}


Node = Union[Rule, Group]


def parse(raw: Any, loc: Loc = ("body", "rules")) -> Node:
    """A rule or group from JSON; every problem is reported with its path, e.g. rules.and[1].op."""
    errors: list[dict[str, Any]] = []
    node = _parse(raw, loc, 1, errors)
    count = _count_rules(node) if node is not None else 0
    if not errors and count > MAX_RULES:
        errors.append({"loc": list(loc), "msg": f"at most {MAX_RULES} rules"})
    if errors:
        summary = "; ".join(f"{path(e['loc'])}: {e['msg']}" for e in errors[:3])
        raise InvalidInput(f"Invalid {summary}", errors)
    assert node is not None
    return node


def path(loc: list[str | int] | Loc) -> str:
    """`["body", "rules", "and", 1, "op"]` as people write it: `rules.and[1].op`."""
    text = ""
    for part in loc:
        if part == "body" and not text:
            continue
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _parse(raw: Any, loc: Loc, depth: int, errors: list[dict[str, Any]]) -> Node | None:
    if not isinstance(raw, dict):
        errors.append({"loc": list(loc), "msg": "must be a rule or an and/or group"})
        return None
    kinds = [k for k in GROUP_KINDS if k in raw]
    if kinds:
        return _parse_group(raw, kinds, loc, depth, errors)
    return _parse_rule(raw, loc, errors)


def _parse_group(raw: dict, kinds: list[str], loc: Loc, depth: int, errors: list[dict[str, Any]]) -> Group | None:
    if len(raw) != 1:
        extra = sorted(set(raw) - {kinds[0]}, key=str)[0]
        errors.append({"loc": [*loc, extra], "msg": "a group holds exactly one of 'and' or 'or'"})
        return None
    kind = kinds[0]
    if depth > MAX_DEPTH:
        errors.append({"loc": [*loc, kind], "msg": f"groups nest at most {MAX_DEPTH} deep"})
        return None
    items = raw[kind]
    if not isinstance(items, list) or not items:
        errors.append({"loc": [*loc, kind], "msg": "must be a non-empty list"})
        return None
    children = [_parse(item, (*loc, kind, i), depth + 1, errors) for i, item in enumerate(items)]
    if any(child is None for child in children):
        return None
    return Group(kind, tuple(children))  # type: ignore[arg-type]


def _parse_rule(raw: dict, loc: Loc, errors: list[dict[str, Any]]) -> Rule | None:
    before = len(errors)
    for key in sorted(set(raw) - {"field", "op", "value"}, key=str):
        errors.append({"loc": [*loc, key], "msg": "unexpected key; a rule has field, op and value"})
    field, op, value = _name(raw.get("field")), _name(raw.get("op")), raw.get("value")
    if field not in FIELDS:
        errors.append({"loc": [*loc, "field"], "msg": f"must be one of {', '.join(FIELDS)}"})
    if op not in OPERATORS:
        errors.append({"loc": [*loc, "op"], "msg": f"must be one of {' '.join(OPERATORS)}"})
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        errors.append({"loc": [*loc, "value"], "msg": "must be a number"})
    elif not 0 <= value <= (MAX_INACTIVE_DAYS if field == "inactive_days" else MAX_VALUE):
        limit = f"{MAX_INACTIVE_DAYS} (a century)" if field == "inactive_days" else f"{MAX_VALUE:.0e}"
        errors.append({"loc": [*loc, "value"], "msg": f"must be between 0 and {limit}"})
    elif field in WHOLE_NUMBER_FIELDS and value != int(value):
        errors.append({"loc": [*loc, "value"], "msg": f"{field} compares with a whole number"})
    if len(errors) > before:
        return None
    if field in WHOLE_NUMBER_FIELDS or value == int(value):
        value = int(value)
    return Rule(field, op, value)


def _name(value: Any) -> str | None:
    """A field or operator name is a string; an operator object or a list names nothing (and is no dict key)."""
    return value if isinstance(value, str) else None


def _count_rules(node: Node) -> int:
    return 1 if isinstance(node, Rule) else sum(_count_rules(child) for child in node.children)


def to_filter(node: Node, now: datetime) -> dict[str, Any]:
    """The Mongo filter selecting the customers the rules select, as ranges on indexed fields.

    `inactive_days` is whole days since `last_active`: floor((now - last_active) / 1 day). So
    `inactive_days > N` is `last_active <= now - (N+1) days`, and `== N` a one-day window.
    """
    if isinstance(node, Group):
        return {f"${node.kind}": [to_filter(child, now) for child in node.children]}
    if node.field != "inactive_days":
        if node.op == "==":
            return {node.field: node.value}
        if node.op == "!=":
            return {node.field: {"$ne": node.value}}
        return {node.field: {_MONGO_OPERATORS[node.op]: node.value}}
    days = int(node.value)
    active_before = {  # last_active <= now - k days  <=>  inactive_days >= k
        ">": days + 1, ">=": days,
    }
    active_after = {  # last_active > now - k days  <=>  inactive_days < k
        "<": days, "<=": days + 1,
    }
    if node.op in active_before:
        return {"last_active": {"$lte": now - active_before[node.op] * DAY}}
    if node.op in active_after:
        return {"last_active": {"$gt": now - active_after[node.op] * DAY}}
    if node.op == "==":
        return {"last_active": {"$gt": now - (days + 1) * DAY, "$lte": now - days * DAY}}
    return {"$or": [{"last_active": {"$gt": now - days * DAY}}, {"last_active": {"$lte": now - (days + 1) * DAY}}]}


def matches(node: Node, customer: dict[str, Any], now: datetime) -> bool:
    """Plain-Python evaluation of the rules for one customer: the reference the filter must agree with."""
    if isinstance(node, Group):
        results = (matches(child, customer, now) for child in node.children)
        return all(results) if node.kind == "and" else any(results)
    if node.field == "inactive_days":
        actual: float = math.floor((now - customer["last_active"]) / DAY)
    else:
        actual = customer[node.field]
    return {">": actual > node.value, ">=": actual >= node.value, "<": actual < node.value,
            "<=": actual <= node.value, "==": actual == node.value, "!=": actual != node.value}[node.op]


def describe(node: Node) -> str:
    """Rules in words, for explanations and campaign screens."""
    if isinstance(node, Group):
        parts = [describe(child) for child in node.children]
        joined = f" {node.kind} ".join(f"({p})" if " and " in p or " or " in p else p for p in parts)
        return joined
    words = {">": "more than", ">=": "at least", "<": "less than", "<=": "at most", "==": "exactly",
             "!=": "other than"}[node.op]
    if node.field == "inactive_days":
        return f"have been inactive for {words} {node.value} days"
    if node.field == "visits":
        return f"visited {words} {node.value} times"
    return f"spent {words} {node.value:g}"
