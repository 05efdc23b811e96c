"""Segment rules (API.md "Rules v2" and "Rules v3"): the one definition used by previews, saved segments, campaign
audiences and the AI's answers.

`grammar` parses and validates a tree, `compiler` turns it into the Mongo filter over the customers collection,
`evaluator` is the plain-Python reference that filter must agree with, `words` says it in words. Behaviour rules
(v3) read the customer's `activity` (`activity`: its layout and writers) through `windows`.
"""
from crm.rules.activity import MAX_DAYS
from crm.rules.compiler import to_filter
from crm.rules.evaluator import matches, subscribed
from crm.rules.grammar import (
    ATTRIBUTE_FIELD,
    ATTRIBUTE_PREFIX,
    BEHAVIOUR_FIELDS,
    BOOLEAN_FIELDS,
    BOOLEAN_OPS,
    BOUGHT,
    CAMPAIGN,
    CAMPAIGN_EVENTS,
    CAMPAIGN_OPS,
    COMPARISONS,
    DAY,
    DAY_FIELDS,
    EXISTS,
    FIELDS,
    GROUP_KINDS,
    LIST_FIELDS,
    LIST_OPS,
    MAX_ATTRIBUTE_NUMBER,
    MAX_DEPTH,
    MAX_ERRORS,
    MAX_INACTIVE_DAYS,
    MAX_RULES,
    MAX_TEXT,
    MAX_VALUE,
    MAX_VALUES,
    NOT,
    NUMBER_FIELDS,
    NUMBER_OPS,
    OPERATORS,
    OPS_BY_TYPE,
    OPT_IN,
    OPT_OUT,
    STRING_OPS,
    TIME_OPS,
    TIME_TEXT,
    WHOLE_NUMBER_FIELDS,
    WINDOW_NUMBER_FIELDS,
    Behaviour,
    Group,
    Loc,
    Node,
    Not,
    Rule,
    attribute_keys,
    empty_ranges,
    parse,
    path,
)
from crm.rules.words import describe

__all__ = [
    "ATTRIBUTE_FIELD", "ATTRIBUTE_PREFIX", "BEHAVIOUR_FIELDS", "BOOLEAN_FIELDS", "BOOLEAN_OPS", "BOUGHT", "CAMPAIGN",
    "CAMPAIGN_EVENTS", "CAMPAIGN_OPS", "COMPARISONS", "DAY", "DAY_FIELDS", "EXISTS", "FIELDS", "GROUP_KINDS",
    "LIST_FIELDS", "LIST_OPS", "MAX_ATTRIBUTE_NUMBER", "MAX_DAYS", "MAX_DEPTH", "MAX_ERRORS", "MAX_INACTIVE_DAYS",
    "MAX_RULES", "MAX_TEXT", "MAX_VALUE", "MAX_VALUES", "NOT", "NUMBER_FIELDS", "NUMBER_OPS", "OPERATORS",
    "OPS_BY_TYPE", "OPT_IN", "OPT_OUT", "STRING_OPS", "TIME_OPS", "TIME_TEXT", "WHOLE_NUMBER_FIELDS",
    "WINDOW_NUMBER_FIELDS", "Behaviour", "Group", "Loc", "Node", "Not", "Rule", "attribute_keys", "describe",
    "empty_ranges", "matches", "parse", "path", "subscribed", "to_filter"
]
