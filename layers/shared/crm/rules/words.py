"""Rules in words, for explanations and campaign screens."""
from __future__ import annotations

from crm.rules.grammar import ATTRIBUTE_PREFIX, EXISTS, Group, Node, Not, json_value


def describe(node: Node) -> str:
    """Rules in words, for explanations and campaign screens."""
    if isinstance(node, Group):
        parts = [describe(child) for child in node.children]
        return f" {node.kind} ".join(f"({p})" if " and " in p or " or " in p else p for p in parts)
    if isinstance(node, Not):
        return f"not ({describe(node.child)})"
    words = {">": "more than", ">=": "at least", "<": "less than", "<=": "at most", "==": "exactly",
             "!=": "other than", "between": "between"}
    value = node.value
    shown = (f"{json_value(value[0])} and {json_value(value[1])}" if node.op == "between"
             else json_value(value))
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
