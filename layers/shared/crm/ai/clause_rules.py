"""One condition of a prompt (a clause) and the rules it becomes. A clause records which token gave each of its
pieces; a rule is built by using pieces, and a piece left unused makes the prompt refused naming its words, so no
word that means something can vanish from the answer."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crm import rules
from crm.ai.prompt_tokens import Token, refusal
from crm.ai.prompt_words import (
    ACTIVE,
    CLICKED,
    CONVERTED,
    COUNT,
    ENGAGEMENT,
    INACTIVE,
    LAST_ACTIVE,
    MONEY,
    NON_OPENERS,
    OPENED,
    ORDER,
    PURCHASE,
    RECEIVED,
    SIGNUP,
    SKUS,
    SUBSCRIBED,
    TAGS,
    UNSUBSCRIBED,
)
from crm.errors import InvalidInput
from crm.services.attributes import KnownAttributes

FLIPPED = {">": "<=", ">=": "<", "<": ">=", "<=": ">", "==": "!=", "!=": "=="}
DAY_SUBJECTS = (ACTIVE, INACTIVE, LAST_ACTIVE, SIGNUP)
CONSENT = (SUBSCRIBED, UNSUBSCRIBED)
PURCHASE_SUBJECTS = (PURCHASE, ORDER, SKUS)
ENGAGEMENT_FIELDS = {OPENED: "opened", CLICKED: "clicked", RECEIVED: "messages_received"}
ORDERS = "orders"  # orders placed in a window (rules v3)
CAMPAIGN_OUTCOMES = {RECEIVED: "received", OPENED: "opened", CLICKED: "clicked", CONVERTED: "converted"}


@dataclass
class Clause:
    subject: str | None = None
    weak: str | None = None  # from a noun such as "spenders": used only when nothing else names the subject
    key: str | None = None
    op: str | None = None  # a comparison, or "between" for a range
    value: float | None = None
    high: float | None = None  # a range's upper end
    unit: int | None = None  # days per unit of the amount: "inactive for 3 weeks"
    vague_unit: str | None = None  # "for months"
    window: bool = False  # a window word ("in the last") waiting for its length
    period_number: float | None = None
    period: int | None = None  # the window's length in days: "in the last 30 days", "this month"
    period_kind: str | None = None  # rolling | period (a calendar period) | since (a date)
    # Said before the condition it is the window of ("in the last 30 days bought TEA-01"): it is no condition
    # of its own, so the clause is whole only when what follows it is.
    period_first: bool = False
    counted: bool = False  # "times", "once", or a noun after its number ("4 orders")
    negated: bool = False
    listed: Token | None = None
    boolean: bool | None = None
    campaign: Token | None = None
    named_in_days: bool = False  # by a field name counted in days: "inactive_days > 30"
    joined_by: str | None = None  # the join that began it; None when it began by itself
    text: list[str] = field(default_factory=list)
    sources: dict[str, list[Token]] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)

    @property
    def said(self) -> str:
        return " ".join(self.text)

    @property
    def complete(self) -> bool:
        return (self.value is not None or self.listed is not None or self.boolean is not None
                or self.subject in CONSENT or (self.period is not None and not self.period_first)
                or self.campaign is not None)

    @property
    def names_a_condition(self) -> bool:
        """Whether a subject, an attribute, a list, an amount or a campaign has been said yet."""
        return not (self.subject is None and self.key is None and self.listed is None and self.value is None
                    and self.boolean is None and self.campaign is None and self.weak is None)

    @property
    def bare(self) -> bool:
        """Words that describe customers but select none ("big spenders", "loyal")."""
        return set(self.sources) <= {"descriptor", "weak"}

    def note(self, piece: str, token: Token) -> None:
        self.sources.setdefault(piece, []).append(token)

    def use(self, *pieces: str) -> None:
        self.used.update(pieces)

    def unused(self) -> list[Token]:
        """The tokens whose pieces no rule used; descriptions are checked against the rules instead."""
        return [t for piece, found in self.sources.items() if piece not in self.used
                and piece not in ("descriptor", "weak") for t in found]


def rules_of(clause: Clause, known: KnownAttributes, previous_campaign: Token | None) -> list[dict[str, Any]]:
    """The rules of one clause (two for a range, or for a campaign's non-openers)."""
    if clause.campaign is not None or "pronoun" in clause.sources:
        return _campaign_rules(clause, previous_campaign)
    if clause.subject in ENGAGEMENT:
        return _engagement_rules(clause)
    if clause.listed is not None:
        return _list_rules(clause)
    if clause.key is not None:
        if clause.subject is not None:
            raise _two_things(clause)
        return _attribute_rules(clause, known)
    subject = clause.subject
    if subject is None and clause.weak is not None:
        subject = clause.weak
        clause.use("weak")
    if subject is None:
        raise refusal(f"{clause.said!r} does not say spend, visits or inactivity")
    clause.use("subject")
    if clause.boolean is not None and subject not in CONSENT:
        raise refusal(f"{clause.said!r}: true/false fits only subscribed or a yes/no attribute")
    if subject in CONSENT:
        return [_consent_rule(clause, subject)]
    if subject == TAGS:
        raise incomplete(clause)
    if subject in PURCHASE_SUBJECTS:
        subject = _purchase_subject(clause, subject)
    if subject == COUNT and (clause.period is not None or clause.window or clause.unit):
        if clause.counted:
            raise refusal(f"{clause.said!r}: visits count over all time, not over a duration; say 'ordered … "
                          "times in the last …'")
        subject = ACTIVE  # "visited in the last 30 days" is about recency, not a count
    if subject == ORDERS:
        return _amount_rules(clause, ORDERS)
    if subject in DAY_SUBJECTS:
        return _days_rules(clause, subject)
    windowed = clause.period is not None or clause.window
    if subject == MONEY:
        return _amount_rules(clause, "order_spend" if windowed else "spend")
    return _amount_rules(clause, "visits")


def incomplete(clause: Clause) -> InvalidInput:
    if clause.subject == SIGNUP:
        return refusal(f"{clause.said!r} needs a period, such as 'in the last 30 days' or 'more than a year ago'")
    if clause.subject == TAGS:
        return refusal(f"{clause.said!r} names no tag")
    return refusal(f"{clause.said!r} has no number")


def _two_things(clause: Clause) -> InvalidInput:
    return refusal(f"One condition names two things: {clause.said!r}; join them with and/or")


def _purchase_subject(clause: Clause, subject: str) -> str:
    if subject == SKUS:
        raise refusal(f"{clause.said!r} names no SKU, such as 'bought SKU-123'")
    windowed = clause.period is not None or clause.window
    if windowed and (clause.counted or (subject == ORDER and clause.value is not None)):
        return ORDERS  # "ordered 3+ times in 60 days"
    if windowed and clause.value is None:
        # Recency. A calendar period or a start date is read from the orders themselves ("haven't bought since
        # October"); a rolling window keeps v1's reading as last activity ("no purchase in the last 90 days").
        return ORDERS if clause.period_kind in ("period", "since") else ACTIVE
    if clause.unit and not clause.counted:
        return ACTIVE  # "haven't purchased for 45 days"
    if clause.counted or (clause.value is None and clause.negated) or subject == ORDER:
        return COUNT  # "purchased twice", "never purchased", "ordered more than 3"
    return MONEY


def window_days(clause: Clause) -> int:
    if clause.period is None:
        raise refusal(f"{clause.said!r} needs a period, such as 'in the last 30 days' or 'this month'")
    if not 1 <= clause.period <= rules.MAX_DAYS:
        raise refusal(f"{clause.said!r}: behaviour is counted over at most the last {rules.MAX_DAYS} days")
    clause.use("window")
    return clause.period


def _amount_rules(clause: Clause, field_name: str) -> list[dict[str, Any]]:
    """spend, visits, or over a window (rules v3) the orders and their amounts."""
    windowed = field_name in ("order_spend", "orders")
    money = field_name in ("spend", "order_spend")
    if money and clause.counted:
        raise refusal(f"{clause.said!r}: spend is an amount, not a number of times")
    if not windowed and (clause.period is not None or clause.window):
        raise refusal(f"{clause.said!r} mixes {field_name} with a duration; {field_name} counts over all time")
    if clause.unit and not clause.named_in_days:
        raise refusal(f"{clause.said!r} mixes {field_name} with a duration")
    head: dict[str, Any] = {"field": field_name}
    if windowed:
        if "alltime" in clause.sources:
            raise refusal(f"{clause.said!r} says both all time and a period")
        head["days"] = window_days(clause)
    clause.use("alltime")
    clause.use("subject", "counted", *(("currency",) if money else ()))
    if clause.value is None:
        if clause.op is None and (clause.negated or field_name == "orders"):
            clause.use("negated")  # "never visited", "no orders", "bought something since October"
            return [{**head, "op": "==" if clause.negated else ">=", "value": 0 if clause.negated else 1}]
        if windowed:
            raise refusal(f"{clause.said!r} gives a duration but no amount; say e.g. 'spent over 1000 in the last "
                          "30 days'")
        raise incomplete(clause)
    return [{**head, **comparison} for comparison in _comparisons(clause, default="==" if not money else None)]


def _comparisons(clause: Clause, default: str | None, scale: float = 1) -> list[dict[str, Any]]:
    """The clause's comparison of its amount: one, or two for a range; a negation flips it."""
    assert clause.value is not None
    clause.use("value", "op", "negated")
    if clause.op == "between":
        assert clause.high is not None
        if clause.negated:
            raise refusal("'not between' is unclear; say 'under … or over …'")
        return [{"op": ">=", "value": _number(clause.value * scale)},
                {"op": "<=", "value": _number(clause.high * scale)}]
    op = clause.op or ("==" if clause.value == 0 else default)
    if op is None:
        raise refusal(f"{clause.said!r} needs a comparison such as 'more than', 'at most' or 'exactly'")
    return [{"op": FLIPPED[op] if clause.negated else op, "value": _number(clause.value * scale)}]


def _number(value: float) -> float | int:
    return int(value) if value == int(value) else value


def _days_rules(clause: Clause, subject: str) -> list[dict[str, Any]]:
    field_name = "signup_days" if subject == SIGNUP else "inactive_days"
    clause.use("subject")
    if clause.period is not None or clause.window:
        if subject == INACTIVE:
            raise refusal(f"{clause.said!r} is unclear; say 'active in the last ...' or 'inactive for more than ...'")
        if clause.value is not None or clause.op is not None:
            raise refusal(f"One condition has two comparisons: {clause.said!r}")
        days = clause.period
        if days is None:
            raise refusal(f"{clause.said!r} needs a length, such as 'in the last 30 days'")
        clause.use("window", "negated")
        # "active in the last 30 days" < 30; its negation, "no purchase in the last 30 days", is the rest: >= 30.
        return [{"field": field_name, "op": ">=" if clause.negated else "<", "value": days}]
    if clause.vague_unit and clause.value is None:
        raise refusal(f"{clause.said!r}: {clause.vague_unit!r} needs a number")
    if clause.value is None:
        raise incomplete(clause)
    if not clause.unit:
        raise refusal(f"{clause.said!r} needs a duration in days, weeks, months or years")
    clause.use("unit")
    if subject == INACTIVE and clause.negated:
        raise refusal(f"{clause.said!r} is unclear; say 'active in the last ...' or 'inactive for more than ...'")
    if subject == ACTIVE and not clause.negated:
        # "active for more than 30 days" is not inactivity, and "active 3 days ago" names a day, not a period.
        raise refusal(f"{clause.said!r} is unclear; say 'active in the last …' or 'inactive for …'")
    default = ">" if subject in (INACTIVE, ACTIVE) else None
    if subject == ACTIVE:
        clause.negated = False  # "haven't been active for 2 weeks": the negation is the inactivity itself
        clause.use("negated")
    rules = [{"field": field_name, **c} for c in _comparisons(clause, default=default, scale=clause.unit)]
    for rule in rules:
        rule["value"] = round(rule["value"])
    return rules


def _consent_rule(clause: Clause, subject: str) -> dict[str, Any]:
    if clause.value is not None or clause.unit or clause.period is not None or (clause.op or "==") not in ("==", "!=") \
            or (clause.op is not None and clause.boolean is None):
        raise refusal(f"{clause.said!r}: subscription is only true or false")
    clause.use("subject", "boolean", "op", "negated")
    wanted = (subject == SUBSCRIBED) == (clause.boolean if clause.boolean is not None else True)
    if clause.op == "!=":
        wanted = not wanted
    return {"field": "subscribed", "op": "==", "value": wanted != clause.negated}


def _list_rules(clause: Clause) -> list[dict[str, Any]]:
    listed = clause.listed
    assert listed is not None
    products = listed.meaning == SKUS
    allowed = (None, *PURCHASE_SUBJECTS) if products else (None, TAGS)
    if (clause.value is not None or clause.unit or clause.subject not in allowed or clause.boolean is not None
            or (clause.key is not None and listed.meaning != "value")):
        raise _two_things(clause)
    if (clause.period is not None or clause.window) and not products:
        raise refusal(f"{clause.said!r} has a duration, which fits activity, signup, orders and engagement only")
    if clause.op is not None and (listed.meaning != "value" or clause.op not in ("==", "!=")):
        raise refusal(f"{clause.said!r}: {clause.op!r} does not fit a list of tags, SKUs or values")
    if len(listed.joined) > 1:
        raise refusal(f"{listed.text!r} mixes 'and' with 'or'; write it as two conditions")
    clause.use("listed", "subject", "negated")
    if listed.meaning == "value":
        return [_value_rule(clause, listed)]
    op = "has_none" if clause.negated else "has_all" if listed.joined == {"and"} else "has_any"
    head: dict[str, Any] = {"field": "skus"} if products else {"field": "tags"}
    if products and (clause.period is not None or clause.window):
        head = {"field": "bought", "days": window_days(clause)}
    elif products:
        clause.use("alltime")  # "ever bought TEA-01"
    if not products:
        return [{**head, "op": op, "value": [item_tag(item) for item in listed.items]}]
    bought = [item_skus(item) for item in listed.items]
    if op == "has_all" and any(len(skus) > 1 for skus in bought):
        # "masala chai and a mug": a product sold as several SKUs is any of them, so each product is its own rule.
        return [{**head, "op": "has_any", "value": skus} for skus in bought]
    return [{**head, "op": op, "value": list(dict.fromkeys(sku for skus in bought for sku in skus))}]


def item_tag(item: Token) -> str:
    return item.meaning if item.kind == "tag" else item.senses.get("tag") or item.text.lower()


def item_skus(item: Token) -> list[str]:
    return list(item.senses["product"]) if item.kind == "product" else [item.text]


def _value_rule(clause: Clause, listed: Token) -> dict[str, Any]:
    keys = set.intersection(*(set(item.candidates) for item in listed.items))
    if clause.key is not None:
        if clause.key not in keys:
            holders = sorted(set().union(*(item.candidates for item in listed.items)))
            raise refusal(f"{clause.said!r}: {listed.text!r} is a known {' or '.join(holders)}, not {clause.key}")
        keys = {clause.key}
        clause.use("key")
    if not keys:
        raise refusal(f"{listed.text!r} are values of different attributes; join them with and/or")
    if len(keys) > 1:
        raise refusal(f"{listed.text!r} could be {' or '.join(sorted(keys))}; say which, e.g. "
                      f"'{listed.text} {sorted(keys)[0]}'")
    key = keys.pop()
    # Every spelling the registry has seen: "Mumbai" and "mumbai" are one city to the person asking.
    values = list(dict.fromkeys(spelling for item in listed.items for spelling in item.candidates[key]))
    if clause.op not in (None, "==", "!="):
        raise refusal(f"{clause.said!r}: {key} is text; it can only be or not be a value")
    clause.use("op", "negated")
    negated = clause.negated != (clause.op == "!=")
    if len(values) == 1:
        return {"field": f"attributes.{key}", "op": "!=" if negated else "==", "value": values[0]}
    # A customer has one city: "in Mumbai and Pune" can only mean either of them.
    return {"field": f"attributes.{key}", "op": "not_in" if negated else "in", "value": values}


def _attribute_rules(clause: Clause, known: KnownAttributes) -> list[dict[str, Any]]:
    key = clause.key
    assert key is not None
    kind = known.types.get(key)
    field_name = f"attributes.{key}"
    clause.use("key")
    if kind == "number" and clause.boolean is None and not clause.unit and clause.period is None:
        if clause.value is None:
            raise incomplete(clause)
        return [{"field": field_name, **c} for c in _comparisons(clause, default="==")]
    if kind == "boolean" and clause.boolean is not None and clause.value is None:
        clause.use("boolean", "negated", "op")
        wanted = clause.boolean ^ clause.negated ^ (clause.op == "!=")
        return [{"field": field_name, "op": "==", "value": wanted}]
    if kind == "string":
        examples = ", ".join(known.values.get(key, [])[:5]) or "none known yet"
        raise refusal(f"{clause.said!r}: {key} is text; name one of its known values ({examples})")
    raise refusal(f"{clause.said!r}: {key} is a {kind}; write this condition as a rule")


def _engagement_rules(clause: Clause) -> list[dict[str, Any]]:
    """Campaign messages received, opened or clicked in a window (rules v3)."""
    subject = clause.subject
    if subject == CONVERTED:
        raise refusal(f"{clause.said!r}: conversions are counted per campaign; name the campaign")
    days = window_days(clause)
    clause.use("subject", "noun", "counted")
    if subject == NON_OPENERS:
        if clause.value is not None or clause.op is not None or clause.negated:
            raise refusal(f"{clause.said!r}: non-openers are those sent a message who opened none")
        return [{"field": "messages_received", "days": days, "op": ">=", "value": 1},
                {"field": "opened", "days": days, "op": "==", "value": 0}]
    head = {"field": ENGAGEMENT_FIELDS[subject], "days": days}
    if clause.value is None:
        if clause.op is not None:
            raise incomplete(clause)
        clause.use("negated")
        return [{**head, "op": "==", "value": 0} if clause.negated else {**head, "op": ">=", "value": 1}]
    return [{**head, **c} for c in _comparisons(clause, default="==")]


def _campaign_rules(clause: Clause, previous_campaign: Token | None) -> list[dict[str, Any]]:
    """What a named campaign did for the customer: received, opened, clicked or converted (rules v3)."""
    campaign = clause.campaign or previous_campaign
    if campaign is None:
        raise refusal(f"{clause.said!r}: 'it' names no campaign")
    ids = campaign.senses.get("campaign", [])
    if len(ids) != 1:
        raise refusal(f"{campaign.text!r} names {len(ids)} campaigns; rename one of them to tell them apart")
    if clause.subject not in CAMPAIGN_OUTCOMES and clause.subject != NON_OPENERS:
        raise refusal(f"{clause.said!r}: say whether they received, opened, clicked or converted from "
                      f"{campaign.text!r}")
    if clause.period is not None or clause.window:
        raise refusal(f"{clause.said!r}: what a campaign did is not counted by period; leave the period out")
    if clause.value is not None or clause.op is not None or clause.counted:
        raise refusal(f"{clause.said!r}: a campaign is received, opened or clicked, not counted")
    clause.use("campaign", "pronoun", "subject", "negated", "noun")
    head = {"field": "campaign", "campaign_id": ids[0]}
    if clause.subject == NON_OPENERS:
        if clause.negated:
            raise refusal(f"{clause.said!r} negates non-openers; say 'opened {campaign.text}'")
        return [{**head, "op": "==", "value": "received"}, {**head, "op": "!=", "value": "opened"}]
    return [{**head, "op": "!=" if clause.negated else "==", "value": CAMPAIGN_OUTCOMES[clause.subject]}]
