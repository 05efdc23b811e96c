"""Rules in words, for explanations and campaign screens."""
from __future__ import annotations

from typing import Mapping

from crm.rules.grammar import ATTRIBUTE_PREFIX, CAMPAIGN, EXISTS, Behaviour, Group, Node, Not, json_value

WORDS = {">": "more than", ">=": "at least", "<": "less than", "<=": "at most", "==": "exactly",
         "!=": "other than", "between": "between"}
# A window rule's verb and what it counts, as in "placed more than 2 orders in the last 30 days".
WINDOW_WORDS = {"orders": ("placed", "orders"), "order_spend": ("spent", ""),
                "messages_received": ("were sent", "campaign messages"), "opened": ("opened", "campaign messages"),
                "clicked": ("clicked", "campaign messages")}
CAMPAIGN_WORDS = {"received": ("were sent", "were not sent"), "opened": ("opened", "did not open"),
                  "clicked": ("clicked", "did not click"), "converted": ("bought after", "did not buy after")}


def describe(node: Node, campaign_names: Mapping[str, str] | None = None) -> str:
    """Rules in words, for explanations and campaign screens; `campaign_names` (id -> name) names the campaigns that
    campaign rules refer to."""
    if isinstance(node, Group):
        parts = [describe(child, campaign_names) for child in node.children]
        return f" {node.kind} ".join(f"({p})" if " and " in p or " or " in p else p for p in parts)
    if isinstance(node, Not):
        return f"not ({describe(node.child, campaign_names)})"
    if isinstance(node, Behaviour):
        return _behaviour(node, campaign_names or {})
    words = WORDS
    value = node.value
    shown = _shown(node.op, value)
    if node.field == "inactive_days" and node.op in words:
        return f"have been inactive for {words[node.op]} {shown} days"
    if node.field == "signup_days" and node.op in words:
        return f"signed up {words[node.op]} {shown} days ago"
    if node.field == "visits" and node.op in words:
        return f"visited {words[node.op]} {shown} times"
    if node.field == "spend" and node.op in words:
        return f"spent {words[node.op]} {value:g}" if node.op != "between" else f"spent between {shown}"
    if node.field == "subscribed":
        return "are subscribed" if value else "are not subscribed"
    if node.op in ("has_any", "has_all", "has_none"):
        what = "tagged" if node.field == "tags" else "bought"
        joined = {"has_any": " or ", "has_all": " and ", "has_none": " or "}[node.op].join(value)
        return f"{'not ' if node.op == 'has_none' else ''}{what} {joined}"
    key = node.field[len(ATTRIBUTE_PREFIX):]
    if node.op == EXISTS:
        return f"{'have' if value else 'have no'} {key}"
    if node.op in ("in", "not_in"):
        return f"{key} {'is' if node.op == 'in' else 'is not'} one of {', '.join(map(str, value))}"
    phrase = {"==": "is", "!=": "is not", "starts_with": "starts with", "before": "is before", "after": "is after",
              ">": "is more than", ">=": "is at least", "<": "is less than", "<=": "is at most",
              "between": "is between"}[node.op]
    return f"{key} {phrase} {shown}"


def _shown(op: str, value) -> str:
    return f"{json_value(value[0])} and {json_value(value[1])}" if op == "between" else json_value(value)


def _behaviour(rule: Behaviour, campaign_names: Mapping[str, str]) -> str:
    if rule.field == CAMPAIGN:
        name = campaign_names.get(rule.campaign_id)
        return (f"{CAMPAIGN_WORDS[rule.value][rule.op == '!=']} "
                f"{f'the campaign {name!r}' if name else f'campaign {rule.campaign_id}'}")
    window = "today" if rule.days == 1 else f"in the last {rule.days} days"
    if rule.op in ("has_any", "has_all", "has_none"):
        joined = {"has_any": " or ", "has_all": " and ", "has_none": " or "}[rule.op].join(rule.value)
        return f"{'did not buy' if rule.op == 'has_none' else 'bought'} {joined} {window}"
    verb, counted = WINDOW_WORDS[rule.field]
    amount = (f"{rule.value[0]:g} and {rule.value[1]:g}" if rule.op == "between" else f"{rule.value:g}")
    counted = counted[:-1] if amount == "1" else counted  # "at least 1 campaign message"
    return " ".join(part for part in (verb, WORDS[rule.op], amount, counted, window) if part)
