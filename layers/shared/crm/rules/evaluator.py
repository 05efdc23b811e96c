"""Rules evaluated in plain Python for one customer document: the reference the compiled filter must agree with."""
from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from crm.rules import windows
from crm.rules.grammar import ATTRIBUTE_PREFIX, DAY, DAY_FIELDS, EXISTS, OPT_IN, OPT_OUT, Behaviour, Group, Node, Not


def subscribed(email_consent: str | None, consent_mode: str) -> bool:
    """May be messaged: opt-out, everyone who has not denied consent; opt-in, only those who granted it."""
    return email_consent == "granted" if consent_mode == OPT_IN else email_consent != "denied"


_MISSING = object()


def matches(node: Node, customer: dict[str, Any], now: datetime, consent_mode: str = OPT_OUT) -> bool:
    """Plain-Python evaluation of the rules for one customer: the reference the filter must agree with. A customer
    without an attribute matches only exists: false, !=, not_in and has_none on it."""
    if isinstance(node, Group):
        results = (matches(child, customer, now, consent_mode) for child in node.children)
        return all(results) if node.kind == "and" else any(results)
    if isinstance(node, Not):
        return not matches(node.child, customer, now, consent_mode)
    if isinstance(node, Behaviour):
        return windows.matches(node, customer, now)
    field, op, value = node.field, node.op, node.value
    if field == "subscribed":
        return subscribed(customer.get("email_consent"), consent_mode) == value
    if field in DAY_FIELDS:
        actual: Any = math.floor((now - customer[DAY_FIELDS[field]]) / DAY)
    elif field.startswith(ATTRIBUTE_PREFIX):
        actual = (customer.get("attributes") or {}).get(field[len(ATTRIBUTE_PREFIX):], _MISSING)
    else:
        actual = customer.get(field, _MISSING)
    if op == EXISTS:
        return (actual is not _MISSING) == value
    if node.type == "list":
        present = set(actual) if isinstance(actual, list) else set()
        return {"has_any": bool(present & set(value)), "has_all": set(value) <= present,
                "has_none": not present & set(value)}[op]
    if op == "!=":
        return actual is _MISSING or not _same(actual, value)
    if op == "not_in":
        return actual is _MISSING or not any(_same(actual, v) for v in value)
    if actual is _MISSING or not _comparable(actual, value if not isinstance(value, tuple) else value[0]):
        return False
    if op == "==":
        return _same(actual, value)
    if op == "in":
        return any(_same(actual, v) for v in value)
    if op == "starts_with":
        return actual.startswith(value)
    if op == "between":
        return value[0] <= actual <= value[1]
    return {">": actual > value, ">=": actual >= value, "<": actual < value, "<=": actual <= value,
            "before": actual < value, "after": actual > value}[op]


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, datetime):
        return "time"
    return "string" if isinstance(value, str) else "other"


def _comparable(actual: Any, value: Any) -> bool:
    """MongoDB compares values of one kind only: a number never matches a text, nor a boolean a number."""
    return _kind(actual) == _kind(value)


def _same(actual: Any, value: Any) -> bool:
    return _comparable(actual, value) and actual == value
