"""Periods in prompts against what rules v3 can say: a window is the last N UTC days, today included. A period
running to today ("this month", "in the past month", "since 1 October") is such a window, exactly; a period that
ended before today ("last month", "in October") is none, and is refused rather than widened to run to today; so is
"since October", which may count from 1 October or from 1 November."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

import pytest

from crm.ai.registry import BrandRegistry
from crm.ai.rules_parser import parse_prompt
from crm.errors import InvalidInput
from crm.rules.activity import day_number
from crm.rules.evaluator import matches

# A Monday, the first day of a quarter, the last day of a year, a Sunday in a leap February, and the tables' day.
DAYS = [date(2026, 1, 5), date(2026, 4, 1), date(2026, 12, 31), date(2028, 2, 27), date(2026, 11, 18)]


def _rules(prompt: str, today: date):
    return parse_prompt(prompt, BrandRegistry(today=today))


def _refusal(prompt: str, today: date) -> str:
    with pytest.raises(InvalidInput) as refused:
        _rules(prompt, today)
    assert refused.value.code == "prompt_not_understood"
    return refused.value.message


def _ordered_on(day: date) -> dict:
    moment = datetime.combine(day, time(12), timezone.utc)
    return {"activity": {"orders": [{"d": day_number(moment), "n": 1, "s": 10.0, "skus": [], "cn": 1, "cs": 10.0}]}}


def _period_start(today: date, unit: str) -> date:
    if unit == "week":
        return today - timedelta(days=today.weekday())
    if unit == "month":
        return today.replace(day=1)
    if unit == "quarter":
        return today.replace(month=(today.month - 1) // 3 * 3 + 1, day=1)
    return today.replace(month=1, day=1)


@pytest.mark.parametrize("today", DAYS, ids=str)
@pytest.mark.parametrize("unit", ["week", "month", "quarter", "year"])
def test_this_period_selects_exactly_the_customers_who_ordered_from_its_first_day_to_today(today, unit):
    node, explanation = _rules(f"ordered at least once this {unit}", today)
    start = _period_start(today, unit)
    now = datetime.combine(today, time(23, 59), timezone.utc)
    assert matches(node, _ordered_on(start), now) and matches(node, _ordered_on(today), now)
    assert not matches(node, _ordered_on(start - timedelta(days=1)), now)
    days = (today - start).days + 1
    assert (f"'this {unit}' as the {days} days since {start.day} {start:%B} (today included)" if days > 1 else
            f"'this {unit}' as today") in explanation


@pytest.mark.parametrize("today", DAYS, ids=str)
@pytest.mark.parametrize("said", ["didn't order last {unit}", "ordered last {unit}", "spent over 1k last {unit}",
                                  "bought something in last {unit}", "active last {unit}",
                                  "clicked an email within last {unit}"])
@pytest.mark.parametrize("unit", ["week", "month", "quarter", "year"])
def test_a_period_that_ended_before_today_is_refused_never_widened_to_today(today, said, unit):
    message = _refusal(said.format(unit=unit), today)
    assert f"last {unit}'" in message and "ended before today" in message
    assert f"'in the last { {'week': 7, 'month': 30, 'quarter': 90, 'year': 365}[unit]} days'" in message


def test_the_refusal_names_the_period_and_what_to_write_instead():
    today = date(2026, 11, 18)
    assert _refusal("customers who didn't order last month", today) == (
        "'last month' (October) ended before today, and rules count days up to today: say 'in the last 30 days', or "
        "'since 1 October' to count the days since then too")
    assert "(28 December 2026 to 3 January)" in _refusal("ordered last week", date(2027, 1, 6))
    assert "(July to September)" in _refusal("spent over 10k last quarter", today)
    assert "(October to December 2025)" in _refusal("spent over 10k last quarter", date(2026, 2, 1))
    assert "'last year' (2025)" in _refusal("bought something last year", today)
    assert "may be the last 30 days or October" in _refusal("bought something in last month", today)


def test_a_month_named_outside_a_date_is_refused_saying_what_to_write():
    today = date(2026, 11, 18)
    assert "'October' ended before today" in _refusal("customers who ordered in October", today)
    assert "'since 1 December 2025'" in _refusal("spent over 5k in December", today)
    assert "say 'this month'" in _refusal("ordered in November", today)
    assert "Did not understand: 'may'" in _refusal("customers who may have ordered", today)


@pytest.mark.parametrize("prompt, days, reading", [
    ("ordered at least once in the last month", 30, "'in the last month' as the last 30 days"),
    ("ordered at least once in the past month", 30, "'in the past month' as the last 30 days"),
    ("spent over 1k over the last quarter", 90, "'over the last quarter' as the last 90 days"),
    ("opened an email in the past year", 365, "'in the past year' as the last 365 days"),
    ("clicked an email past week", 7, "'past week' as the last 7 days"),
    ("placed 2+ orders in the last 2 weeks", 14, "'in the last 2 weeks' as the last 14 days"),
])
def test_a_rolling_period_is_that_many_days_to_today_and_the_explanation_says_so(prompt, days, reading):
    node, explanation = _rules(prompt, date(2026, 11, 18))
    assert [rule["days"] for rule in node.to_json()["and"]] == [days]
    assert f"Read {reading}." in explanation


def test_since_the_start_of_last_month_is_the_days_from_its_first_day_to_today():
    today = date(2026, 11, 18)
    node, _ = _rules("no orders since the start of last month", today)
    assert node.to_json() == {"and": [{"field": "orders", "days": 49, "op": "==", "value": 0}]}


@pytest.mark.parametrize("prompt, start, after", [
    ("hasn't bought since October", "1 October", "1 November"),
    ("bought something since October", "1 October", "1 November"),
    ("no orders since Sep 2025", "1 September 2025", "1 October 2025"),
    ("no purchase since last month", "1 October", "1 November"),
    ("no purchase since last quarter", "1 July", "1 October"),
    ("no purchase since last week", "9 November", "16 November"),
    ("no purchase since last year", "1 January 2025", "1 January"),
])
def test_since_a_period_that_ended_before_today_is_refused_naming_both_days_it_may_count_from(prompt, start, after):
    """'hasn't bought since October' is said of someone whose last order was in October: counting from 1 October
    would leave them out."""
    assert _refusal(prompt, date(2026, 11, 18)) == (
        f"'{prompt[prompt.index('since'):]}' may count from {start} or from {after}: say 'since {start}' or "
        f"'since {after}'")


@pytest.mark.parametrize("prompt, days", [
    ("no orders since November", 18),
    ("no orders since 1 October", 49),
    ("no orders since October 15", 35),
    ("no orders since 1st Sep", 79),
    ("no orders since 2026-06-01", 171),
    ("no orders since the start of this quarter", 49),
])
def test_since_a_day_or_this_period_counts_from_that_day_to_today(prompt, days):
    node, _ = _rules(prompt, date(2026, 11, 18))
    assert node.to_json() == {"and": [{"field": "orders", "days": days, "op": "==", "value": 0}]}
