"""Rules compiled to the Mongo filter over the customers collection that previews, saved segments and campaign
audiences run: ranges, equalities and set tests on indexed fields."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from crm.rules import windows
from crm.rules.grammar import DAY, DAY_FIELDS, EXISTS, OPT_IN, OPT_OUT, Behaviour, Group, Node, Not

_MONGO_OPERATORS = {">": "$gt", ">=": "$gte", "<": "$lt", "<=": "$lte"}


def to_filter(node: Node, now: datetime, consent_mode: str = OPT_OUT) -> dict[str, Any]:
    """The Mongo filter selecting the customers the rules select, as ranges and equalities on indexed fields.

    `inactive_days` is whole days since `last_active`: floor((now - last_active) / 1 day). So
    `inactive_days > N` is `last_active <= now - (N+1) days`, and `== N` a one-day window; `signup_days`
    likewise on `created_at`. Behaviour rules (v3) read the customer's activity: crm.rules.windows.
    """
    if isinstance(node, Group):
        return {f"${node.kind}": [to_filter(child, now, consent_mode) for child in node.children]}
    if isinstance(node, Not):
        return {"$nor": [to_filter(node.child, now, consent_mode)]}
    if isinstance(node, Behaviour):
        return windows.to_filter(node, now)
    field, op, value = node.field, node.op, node.value
    if field in DAY_FIELDS:
        return _days_filter(DAY_FIELDS[field], op, value, now)
    if field == "subscribed":
        granted = {"email_consent": "granted"} if consent_mode == OPT_IN else {"email_consent": {"$ne": "denied"}}
        denied = {"email_consent": {"$ne": "granted"}} if consent_mode == OPT_IN else {"email_consent": "denied"}
        return granted if value else denied
    if op == EXISTS:
        return {field: {"$exists": value}}
    if op in ("==", "!="):
        return {field: value} if op == "==" else {field: {"$ne": value}}
    if op in _MONGO_OPERATORS:
        return {field: {_MONGO_OPERATORS[op]: value}}
    if op == "between":
        return {field: {"$gte": value[0], "$lte": value[1]}}
    if op == "before":
        return {field: {"$lt": value}}
    if op == "after":
        return {field: {"$gt": value}}
    if op == "starts_with":
        # A prefix as an index range; anchored regexes do not use the index on every server.
        return {field: {"$gte": value, **_below_every_extension(value)}}
    return {field: {{"in": "$in", "not_in": "$nin", "has_any": "$in", "has_all": "$all",
                     "has_none": "$nin"}[op]: list(value)}}


def _below_every_extension(prefix: str) -> dict[str, str]:
    """The bound under which every text starting with prefix sorts: the prefix with its last character moved up
    one (none when every character is already the last one)."""
    stem = prefix.rstrip("\U0010ffff")
    if not stem:
        return {}
    following = ord(stem[-1]) + 1
    # Surrogates are no characters of stored text: after U+D7FF comes U+E000.
    return {"$lt": stem[:-1] + chr(0xE000 if following == 0xD800 else following)}


def _days_filter(stored: str, op: str, value: Any, now: datetime) -> dict[str, Any]:
    """Whole days since `stored` compared with value, as a range of `stored`."""
    if op == "between":
        low, high = value
        return {stored: {"$gt": now - (high + 1) * DAY, "$lte": now - low * DAY}}
    days = int(value)
    at_least = {">": days + 1, ">=": days}  # stored <= now - k days  <=>  days since >= k
    below = {"<": days, "<=": days + 1}  # stored > now - k days  <=>  days since < k
    if op in at_least:
        return {stored: {"$lte": now - at_least[op] * DAY}}
    if op in below:
        return {stored: {"$gt": now - below[op] * DAY}}
    if op == "==":
        return {stored: {"$gt": now - (days + 1) * DAY, "$lte": now - days * DAY}}
    return {"$or": [{stored: {"$gt": now - days * DAY}}, {stored: {"$lte": now - (days + 1) * DAY}}]}
