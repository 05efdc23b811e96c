"""Rules v2 against plain Python: random rule trees (every field, operator, `not`, missing attributes) over random
customers (some lacking attributes, tags or consent) select in MongoDB exactly what `rules.matches` selects; and the
check is sharp enough to catch an off-by-one in the compiler."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from bson import ObjectId
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from crm import rules
from crm.errors import InvalidInput
from tests.helpers import uses_index

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)
SMALL = st.integers(min_value=0, max_value=6)
WORDS = ["pune", "mumbai", "goa", "Pune", "mu"]
TAGS = ["vip", "new", "churned"]
SKUS = ["TEA", "MUG", "CUP"]
TIMES = [NOW - k * DAY for k in range(0, 6)]


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _number_rules(field: str, values=SMALL) -> st.SearchStrategy:
    single = st.builds(lambda op, v: {"field": field, "op": op, "value": v}, st.sampled_from(rules.COMPARISONS),
                       values)
    between = st.builds(lambda a, b: {"field": field, "op": "between", "value": sorted([a, b])}, values, values)
    return st.one_of(single, between)


LEAF = st.one_of(
    _number_rules("spend"), _number_rules("visits"), _number_rules("inactive_days"), _number_rules("signup_days"),
    _number_rules("attributes.age"),
    st.builds(lambda op, v: {"field": "attributes.city", "op": op, "value": v},
              st.sampled_from(["==", "!=", "starts_with"]), st.sampled_from(WORDS)),
    st.builds(lambda op, v: {"field": "attributes.city", "op": op, "value": v},
              st.sampled_from(["in", "not_in"]), st.lists(st.sampled_from(WORDS), min_size=1, max_size=3)),
    st.builds(lambda op, t: {"field": "attributes.joined", "op": op, "value": _iso(t)},
              st.sampled_from(["before", "after"]), st.sampled_from(TIMES)),
    st.builds(lambda a, b: {"field": "attributes.joined", "op": "between",
                            "value": [_iso(min(a, b)), _iso(max(a, b))]},
              st.sampled_from(TIMES), st.sampled_from(TIMES)),
    st.builds(lambda v: {"field": "attributes.vip", "op": "==", "value": v}, st.booleans()),
    st.builds(lambda field, v: {"field": field, "op": "exists", "value": v},
              st.sampled_from(["attributes.city", "attributes.age", "attributes.vip", "attributes.joined"]),
              st.booleans()),
    st.builds(lambda field, op, v: {"field": field, "op": op, "value": v}, st.just("tags"),
              st.sampled_from(["has_any", "has_all", "has_none"]), st.lists(st.sampled_from(TAGS), min_size=1,
                                                                            max_size=2)),
    st.builds(lambda op, v: {"field": "skus", "op": op, "value": v},
              st.sampled_from(["has_any", "has_all", "has_none"]),
              st.lists(st.sampled_from(SKUS), min_size=1, max_size=2)),
    st.builds(lambda v: {"field": "subscribed", "op": "==", "value": v}, st.booleans()),
)
TREE = st.recursive(
    LEAF,
    lambda children: st.one_of(
        st.builds(lambda kind, items: {kind: items}, st.sampled_from(rules.GROUP_KINDS),
                  st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda child: {"not": child}, children)),
    max_leaves=6,
).filter(lambda raw: _depth(raw) <= rules.MAX_DEPTH)


def _depth(raw) -> int:
    if "field" in raw:
        return 0
    (items,) = raw.values()
    return 1 + max(_depth(item) for item in (items if isinstance(items, list) else [items]))


def _maybe(strategy):
    return st.one_of(st.none(), strategy)


OFFSETS = st.sampled_from([0, 1, -1, 43_200_000, -43_200_000])
CUSTOMER = st.builds(
    lambda spend, visits, days, since, offset, city, age, joined, vip, tags, skus, consent: {
        "_id": ObjectId(), "spend": spend, "visits": visits,
        "last_active": NOW - days * DAY + timedelta(milliseconds=offset),
        "created_at": NOW - since * DAY + timedelta(milliseconds=offset),
        "attributes": {k: v for k, v in (("city", city), ("age", age), ("joined", joined), ("vip", vip))
                       if v is not None},
        **({"tags": tags} if tags is not None else {}), **({"skus": skus} if skus is not None else {}),
        **({"email_consent": consent} if consent is not None else {})},
    st.one_of(SMALL, st.floats(min_value=0, max_value=7, allow_nan=False).map(lambda f: round(f, 2))),
    SMALL, SMALL, SMALL, OFFSETS, _maybe(st.sampled_from(WORDS)), _maybe(st.one_of(SMALL, st.just(2.5))),
    _maybe(st.sampled_from(TIMES).map(lambda t: t + timedelta(hours=1))), _maybe(st.booleans()),
    _maybe(st.lists(st.sampled_from(TAGS), max_size=3, unique=True)),
    _maybe(st.lists(st.sampled_from(SKUS), max_size=3, unique=True)), _maybe(st.sampled_from(["granted", "denied"])),
)


def _disagreement(collection, customers, raw, consent_mode="opt_out", to_filter=rules.to_filter):
    node = rules.parse(raw)
    selected = {d["_id"] for d in collection.find(to_filter(node, NOW, consent_mode), {"_id": 1})}
    expected = {c["_id"] for c in customers if rules.matches(node, c, NOW, consent_mode)}
    return selected ^ expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(customers=st.lists(CUSTOMER, min_size=1, max_size=20), raw=TREE,
       consent_mode=st.sampled_from(["opt_out", "opt_in"]))
def test_filter_selects_exactly_what_plain_python_selects(db, customers, raw, consent_mode):
    collection = db["rules_v2_property"]
    collection.delete_many({})
    collection.insert_many(customers)
    assert not _disagreement(collection, customers, raw, consent_mode), (raw, rules.to_filter(
        rules.parse(raw), NOW, consent_mode))


def _off_by_one_days(node, now, consent_mode="opt_out"):
    """A deliberately wrong compiler: `inactive_days > N` as `>= N`."""
    if isinstance(node, rules.Rule) and node.field == "inactive_days" and node.op == ">":
        node = rules.Rule(node.field, ">=", node.value, node.type)
    if isinstance(node, rules.Group):
        return {f"${node.kind}": [_off_by_one_days(c, now, consent_mode) for c in node.children]}
    if isinstance(node, rules.Not):
        return {"$nor": [_off_by_one_days(node.child, now, consent_mode)]}
    return rules.to_filter(node, now, consent_mode)


def _between_exclusive(node, now, consent_mode="opt_out"):
    """Another: `between` on an attribute number as exclusive at the top."""
    compiled = rules.to_filter(node, now, consent_mode)
    if isinstance(node, rules.Rule) and node.op == "between" and node.field == "attributes.age":
        return {node.field: {"$gte": node.value[0], "$lt": node.value[1]}}
    return compiled


@pytest.mark.parametrize("mutant, leaf", [
    (_off_by_one_days, _number_rules("inactive_days")), (_between_exclusive, _number_rules("attributes.age"))])
def test_the_property_catches_an_off_by_one_compiler(db, mutant, leaf):
    collection = db["rules_v2_mutant"]

    def caught(example) -> bool:
        customers, raw = example
        collection.delete_many({})
        collection.insert_many(customers)
        return bool(_disagreement(collection, customers, raw, to_filter=mutant))

    found = find(st.tuples(st.lists(CUSTOMER, min_size=1, max_size=20), leaf), caught,
                 settings=settings(max_examples=300, deadline=None, database=None))
    assert found


@pytest.mark.parametrize("raw, loc, words", [
    ({"field": "tags", "op": ">", "value": 1}, "rules.op", "has_any"),
    ({"field": "spend", "op": "in", "value": [1]}, "rules.op", "between"),
    ({"field": "attributes.city", "op": ">", "value": "x"}, "rules.op", "starts_with"),
    ({"field": "attributes.city", "op": "==", "value": 5}, "rules.value", "is a string"),
    ({"field": "attributes.nope", "op": "==", "value": "x"}, "rules.field", "no customer has"),
    ({"field": "attributes.City", "op": "==", "value": "x"}, "rules.field", "attributes.<key>"),
    ({"field": "attributes.city", "op": "in", "value": []}, "rules.value", "1 to 100"),
    ({"field": "attributes.city", "op": "in", "value": [f"c{i}" for i in range(101)]}, "rules.value", "1 to 100"),
    ({"field": "attributes.city", "op": "==", "value": {"$gt": ""}}, "rules.value", "text"),
    ({"field": "attributes.joined", "op": "before", "value": "yesterday"}, "rules.value", "ISO 8601"),
    ({"field": "attributes.joined", "op": "between", "value": ["2026-02-01T00:00:00Z", "2026-01-01T00:00:00Z"]},
     "rules.value", "low must not"),
    ({"field": "spend", "op": "between", "value": [5]}, "rules.value", "[low, high]"),
    ({"field": "subscribed", "op": "==", "value": "yes"}, "rules.value", "true or false"),
    ({"field": "attributes.city", "op": "exists", "value": 1}, "rules.value", "true or false"),
    ({"not": {"field": "spend", "op": "~", "value": 1}}, "rules.not.op", "must be one of"),
    ({"not": [{"field": "spend", "op": ">", "value": 1}]}, "rules.not", "must be a rule"),
    ({"and": [{"field": "spend", "op": ">", "value": i} for i in range(51)]}, "rules.and", "at most 50"),
    ({"field": "spend", "op": ">", "value": 10**400}, "rules.value", "between"),
    ({"field": "attributes.age", "op": "between", "value": [0, 10**400]}, "rules.value", "[low, high]"),
    ({"field": "tags", "op": "has_any", "value": ["\ud800"]}, "rules.value", "texts"),
    ({"field": "attributes.city", "op": "==", "value": "\ud800"}, "rules.value", "text"),
    ({"not": {"not": {"not": {"not": {"not": {"not": {"field": "spend", "op": ">", "value": 1}}}}}}},
     "rules.not.not.not.not.not.not", "nest at most"),
])
def test_a_rule_that_does_not_fit_its_field_is_422_naming_its_path(raw, loc, words):
    with pytest.raises(InvalidInput) as caught:
        rules.parse(raw, attributes={"city": "string", "age": "number", "joined": "time", "vip": "boolean"})
    found = [(rules.path(d["loc"]), d["msg"]) for d in caught.value.details]
    assert any(path == loc and words in msg for path, msg in found), found


def test_v1_rules_keep_their_meaning_and_v2_rules_round_trip():
    v1 = {"and": [{"field": "inactive_days", "op": ">", "value": 180}, {"field": "spend", "op": ">", "value": 5000}]}
    assert rules.parse(v1).to_json() == v1
    v2 = {"or": [{"not": {"field": "tags", "op": "has_any", "value": ["vip"]}},
                 {"field": "attributes.joined", "op": "between", "value": ["2026-01-01T00:00:00Z",
                                                                          "2026-02-01T00:00:00Z"]}]}
    assert rules.parse(rules.parse(v2).to_json()).to_json() == v2


# Attribute rules are served on Atlas by the wildcard index on attributes; SecantusDB builds it but scans instead.
@pytest.mark.parametrize("rule", [
    {"field": "tags", "op": "has_any", "value": ["vip"]}, {"field": "skus", "op": "has_any", "value": ["TEA"]},
    {"field": "signup_days", "op": "<", "value": 30}, {"field": "signup_days", "op": "between", "value": [3, 9]}])
def test_v2_rules_use_indexes(db, rule):
    from crm.db import CUSTOMERS

    db[CUSTOMERS].insert_many([{"email": f"c{i}@example.com", "tags": ["vip"] if i % 3 else [], "skus": ["TEA"],
                                "created_at": NOW - i * DAY, "attributes": {"city": ["pune", "goa"][i % 2]}}
                               for i in range(60)])
    plan = db[CUSTOMERS].find(rules.to_filter(rules.parse(rule), NOW)).explain()["queryPlanner"]["winningPlan"]
    assert uses_index(plan), plan


def test_a_tree_of_too_many_rules_is_refused_without_reading_it_all():
    leaf = {"field": "spend", "op": ">", "value": 1}
    huge = {"or": [{"and": [leaf] * 50}] * 50}  # 2,500 rules, each group within its own limit
    with pytest.raises(InvalidInput) as caught:
        rules.parse(huge)
    assert caught.value.details == [{"loc": ["body", "rules"], "msg": "at most 50 rules"}]
    bad = {"or": [{"and": [{}] * 50}] * 50}
    with pytest.raises(InvalidInput) as caught:
        rules.parse(bad)
    assert len(caught.value.details) <= rules.MAX_ERRORS


@pytest.mark.parametrize("rule, stored", [
    ({"field": "attributes.city", "op": "starts_with", "value": "ab"}, "ab\U0010ffffz"),
    ({"field": "attributes.city", "op": "starts_with", "value": "a\U0010ffff"}, "a\U0010ffff\U0010ffff"),
    ({"field": "attributes.joined", "op": "before", "value": "2026-01-01T00:00:00.0005Z"},
     datetime(2026, 1, 1, tzinfo=timezone.utc)),
    ({"field": "attributes.joined", "op": "between", "value": ["2026-01-01T00:00:00.0005Z", "2026-01-02T00:00:00Z"]},
     datetime(2026, 1, 1, 0, 0, 0, 900, tzinfo=timezone.utc)),
])
def test_edges_of_text_and_time_agree_with_the_database(db, rule, stored):
    key = rule["field"].split(".")[1]
    collection = db["rules_v2_edges"]
    collection.insert_one({"_id": 1, "attributes": {key: stored}})
    kept = collection.find_one({"_id": 1})  # as the database keeps it: times to the millisecond
    node = rules.parse(rule)
    assert (collection.count_documents(rules.to_filter(node, NOW)) == 1) == rules.matches(node, kept, NOW)
