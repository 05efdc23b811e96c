"""The rule engine: validation with paths and index-friendly filters (agreement with plain Python, for every
field and operator: test_rules_v2)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from crm import rules
from crm.db import CUSTOMERS
from crm.errors import InvalidInput
from tests.helpers import uses_index

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)


def _paths(raw) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        rules.parse(raw)
    return [rules.path(d["loc"]) for d in caught.value.details]


@pytest.mark.parametrize("raw, expected", [
    ({"and": [{"field": "spend", "op": ">", "value": 1}, {"field": "spend", "op": "~", "value": 1}]},
     ["rules.and[1].op"]),
    ({"field": "age", "op": ">", "value": 1}, ["rules.field"]),
    ({"field": "spend", "op": ">", "value": "5"}, ["rules.value"]),
    ({"field": "spend", "op": ">", "value": True}, ["rules.value"]),
    ({"field": "spend", "op": ">", "value": -1}, ["rules.value"]),
    ({"field": "visits", "op": ">", "value": 1.5}, ["rules.value"]),
    ({"field": "spend", "op": ">", "value": {"$gt": ""}}, ["rules.value"]),
    ({"field": "spend", "op": ">", "value": 1, "x": 1}, ["rules.x"]),
    ({"and": []}, ["rules.and"]),
    ({"or": {"field": "spend"}}, ["rules.or"]),
    ({"and": [{"field": "spend", "op": ">", "value": 1}], "or": []}, ["rules.or"]),
    ([], ["rules"]),
    ({"or": [{"and": [{"or": [{"and": [{"or": [{"and": [{"field": "spend", "op": ">", "value": 1}]}]}]}]}]}]},
     ["rules.or[0].and[0].or[0].and[0].or[0].and"]),
])
def test_invalid_rules_name_their_path(raw, expected):
    assert _paths(raw) == expected


def test_five_levels_of_groups_are_allowed():
    leaf = {"field": "spend", "op": ">", "value": 1}
    node = rules.parse({"or": [{"and": [{"or": [{"and": [{"or": [leaf]}]}]}]}]})
    assert isinstance(node, rules.Group)


@pytest.mark.parametrize("rule, expected", [
    ({"field": "spend", "op": ">=", "value": 5000}, {"spend": {"$gte": 5000}}),
    ({"field": "visits", "op": "==", "value": 3}, {"visits": 3}),
    ({"field": "visits", "op": "!=", "value": 3}, {"visits": {"$ne": 3}}),
    ({"field": "inactive_days", "op": ">", "value": 180}, {"last_active": {"$lte": NOW - 181 * DAY}}),
    ({"field": "inactive_days", "op": ">=", "value": 180}, {"last_active": {"$lte": NOW - 180 * DAY}}),
    ({"field": "inactive_days", "op": "<", "value": 30}, {"last_active": {"$gt": NOW - 30 * DAY}}),
    ({"field": "inactive_days", "op": "<=", "value": 30}, {"last_active": {"$gt": NOW - 31 * DAY}}),
    ({"field": "inactive_days", "op": "==", "value": 7},
     {"last_active": {"$gt": NOW - 8 * DAY, "$lte": NOW - 7 * DAY}}),
])
def test_compiled_filters(rule, expected):
    assert rules.to_filter(rules.parse(rule), NOW) == expected


def test_filters_never_compute_per_document():
    node = rules.parse({"or": [{"field": "inactive_days", "op": "!=", "value": 3},
                               {"and": [{"field": "spend", "op": "<", "value": 9}]}]})
    text = repr(rules.to_filter(node, NOW))
    assert "$expr" not in text and "$where" not in text and "$function" not in text


@pytest.mark.parametrize("rule", [{"field": "spend", "op": ">", "value": 10},
                                  {"field": "visits", "op": "<=", "value": 2},
                                  {"field": "inactive_days", "op": ">", "value": 30},
                                  {"field": "inactive_days", "op": "==", "value": 30}])
def test_single_rules_use_indexes(db, rule):
    db[CUSTOMERS].insert_many([{"email": f"c{i}@example.com", "spend": i, "visits": i % 5, "last_active": NOW - i * DAY}
                               for i in range(50)])
    plan = db[CUSTOMERS].find(rules.to_filter(rules.parse(rule), NOW)).explain()["queryPlanner"]["winningPlan"]
    assert uses_index(plan), plan
