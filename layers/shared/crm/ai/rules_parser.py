"""The offline natural-language → rules parser: everyday words for the fields, comparisons, amounts and
durations, joined by and/or. Whatever it cannot map is reported, never guessed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from crm import rules
from crm.errors import InvalidInput

NUMBER_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12}
MULTIPLIERS = {"k": 1e3, "thousand": 1e3, "m": 1e6, "mn": 1e6, "million": 1e6, "lakh": 1e5, "lakhs": 1e5,
               "lac": 1e5, "lacs": 1e5, "crore": 1e7, "crores": 1e7, "cr": 1e7, "b": 1e9, "bn": 1e9, "billion": 1e9}
CURRENCY_WORDS = {"rs", "inr", "usd", "eur", "gbp", "rupees", "rupee", "dollars", "dollar", "euros", "euro",
                  "pounds", "bucks"}
DAYS_PER_UNIT = {"day": 1, "days": 1, "week": 7, "weeks": 7, "month": 30, "months": 30, "year": 365, "years": 365,
                 "yr": 365, "yrs": 365}

# Longest phrase wins; each maps to (kind, meaning).
PHRASES: dict[tuple[str, ...], tuple[str, str]] = {}


def _add(kind: str, meaning: str, *phrases: str) -> None:
    for phrase in phrases:
        PHRASES[tuple(phrase.split())] = (kind, meaning)


_add("field", "spend", "spent", "spend", "spends", "spending", "purchases", "purchase", "purchased", "bought",
     "order value", "orders worth", "lifetime value", "ltv", "revenue", "paid")
_add("field", "visits", "visits", "visit", "visited", "came", "come", "orders", "ordered", "placed")
_add("field", "inactive", "inactive", "not active", "dormant", "lapsed", "haven't visited", "have not visited",
     "hasn't visited", "has not visited", "not visited", "no visits", "no visit", "haven't come", "not come",
     "haven't ordered", "have not ordered", "not ordered", "haven't purchased", "have not purchased",
     "not purchased", "haven't bought", "not seen", "haven't been seen")
_add("field", "last_active", "last active", "last seen", "last visit", "last visited", "last ordered",
     "last purchase", "last purchased", "last order")
_add("field", "active", "active", "seen")
_add("op", ">", "more than", "over", "above", "greater than", "exceeding", "exceeds", "exceed", "beyond",
     "longer than", "higher than", ">", "in excess of")
_add("op", ">=", "at least", "minimum", "min", ">=", "≥", "no less than", "not less than")
_add("op", "<", "less than", "under", "below", "fewer than", "lower than", "shorter than", "<", "within",
     "in the last", "in the past", "in last", "in past", "during the last", "during the past")
_add("op", "<=", "at most", "no more than", "not more than", "up to", "maximum", "max", "<=", "≤")
_add("op", "==", "exactly", "equal to", "equals", "=", "==")
_add("op", "!=", "not", "not exactly", "other than", "not equal to", "!=", "≠")
_add("postfix", ">=", "or more", "or above", "or over", "and above", "and up", "or higher", "+")
_add("postfix", "<=", "or less", "or fewer", "or below", "or under", "and below", "or lower")
_add("join", "and", "and", "&", ",", "but", "as well as")
_add("join", "or", "or", "either")
_add("between", "between", "between")

STOPWORDS = {
    "users", "user", "customers", "customer", "people", "shoppers", "shopper", "buyers", "clients", "members",
    "folks", "everyone", "anyone", "those", "who", "whose", "that", "which", "have", "has", "had", "having", "been",
    "be", "are", "is", "was", "were", "with", "for", "the", "of", "in", "on", "to", "by", "their", "they",
    "them", "total", "than", "times", "time", "since", "ago", "show", "me", "find", "list", "get", "all", "segment",
    "audience", "target", "want", "give", "select", "i", "please", "any", "amount", "worth", "value", "money",
    "lifetime", "overall", "last", "past", "period", "so", "far", "store", "shop", "us", "our", "from",
}
PHRASE_LENGTH = max(len(p) for p in PHRASES)
TOKEN = re.compile(
    r"(?P<num>[₹$€£]?\s?\d+(?:,\d{2,3})*(?:\.\d+)?\s?(?:k|mn|m|bn|b|cr|lakhs?|lacs?|crores?|thousand|million|billion)?"
    r"(?![a-z]))"
    r"|(?P<sym>>=|<=|!=|==|[<>=≥≤≠&,+])"
    r"|(?P<word>[a-z]+(?:'[a-z]+)?)"
    r"|(?P<other>\S)"
)


@dataclass
class Token:
    kind: str  # field | op | postfix | join | between | num | unit | currency | unknown
    meaning: str = ""
    value: float = 0.0
    text: str = ""


@dataclass
class Clause:
    subject: str | None = None
    op: str | None = None
    value: float | None = None
    days_per_unit: int | None = None
    text: list[str] = field(default_factory=list)


def parse_prompt(prompt: str, known=None) -> tuple[rules.Node, str]:
    """Rules and an explanation for a prompt; InvalidInput naming the words it could not map."""
    tokens = _tokens(prompt)
    unknown = [t.text for t in tokens if t.kind == "unknown"]
    if unknown:
        raise _refusal(f"Did not understand: {', '.join(repr(w) for w in unknown)}",
                       [{"loc": ["body", "prompt"], "msg": f"unknown word {w!r}"} for w in unknown])
    clauses, joins = _clauses(_expand_between(tokens))
    rule_list = [_rule(clause, clauses[i - 1] if i else None) for i, clause in enumerate(clauses)]
    group = _combine(rule_list, joins)
    return group, f"Customers who {rules.describe(group)}."


def _refusal(message: str, details: list[dict] | None = None) -> InvalidInput:
    return InvalidInput(message, details or [{"loc": ["body", "prompt"], "msg": message}], code="prompt_not_understood")


def _tokens(prompt: str) -> list[Token]:
    text = prompt.lower().replace("’", "'").replace("‘", "'")
    raw: list[Token] = []
    for match in TOKEN.finditer(text):
        if match.group("num"):
            raw.append(Token("num", value=_amount(match.group("num")), text=match.group("num").strip()))
        elif match.group("sym"):
            raw.append(Token("word", text=match.group("sym")))
        elif match.group("word"):
            word = match.group("word")
            if word.endswith("'s"):
                word = word[:-2]
            raw.append(Token("word", text=word))
        elif match.group("other") not in {".", "?", "!", ":", ";", "(", ")", "'", '"'}:
            raw.append(Token("unknown", text=match.group("other")))
    return _phrases(raw)


def _amount(text: str) -> float:
    match = re.fullmatch(r"[₹$€£]?\s?(\d+(?:,\d{2,3})*(?:\.\d+)?)\s?([a-z]*)", text.strip())
    assert match is not None
    number = float(match.group(1).replace(",", ""))
    return number * MULTIPLIERS.get(match.group(2), 1) if match.group(2) else number


def _phrases(raw: list[Token]) -> list[Token]:
    out: list[Token] = []
    i = 0
    while i < len(raw):
        token = raw[i]
        if token.kind != "word":
            out.append(token)
            i += 1
            continue
        for length in range(PHRASE_LENGTH, 0, -1):
            words = tuple(t.text for t in raw[i:i + length] if t.kind == "word")
            if len(words) == length and words in PHRASES:
                kind, meaning = PHRASES[words]
                out.append(Token(kind, meaning, text=" ".join(words)))
                i += length
                break
        else:
            word = token.text
            if word in MULTIPLIERS and out and out[-1].kind == "num":
                out[-1].value *= MULTIPLIERS[word]
            elif word in NUMBER_WORDS:
                out.append(Token("num", value=NUMBER_WORDS[word], text=word))
            elif word in DAYS_PER_UNIT:
                out.append(Token("unit", value=DAYS_PER_UNIT[word], text=word))
            elif word in CURRENCY_WORDS:
                out.append(Token("currency", text=word))
            elif word not in STOPWORDS:
                out.append(Token("unknown", text=word))
            i += 1
    return out


def _expand_between(tokens: list[Token]) -> list[Token]:
    """`between 1k and 5k` is `at least 1k and at most 5k`."""
    out: list[Token] = []
    i = 0
    while i < len(tokens):
        if tokens[i].kind == "between":
            try:
                join = next(j for j in range(i + 1, len(tokens)) if tokens[j].kind == "join")
            except StopIteration:
                raise _refusal("'between' needs two amounts joined by 'and'") from None
            out += [Token("op", ">="), *tokens[i + 1:join], Token("join", "and"), Token("op", "<=")]
            i = join + 1
            continue
        out.append(tokens[i])
        i += 1
    return out


def _clauses(tokens: list[Token]) -> tuple[list[Clause], list[str]]:
    clauses, joins = [Clause()], []
    for token in tokens:
        clause = clauses[-1]
        if token.kind == "join":
            if clause.text:
                clauses.append(Clause())
                joins.append(token.meaning)
            continue
        clause.text.append(token.text)
        if token.kind == "field":
            if clause.subject and clause.subject != token.meaning:
                raise _refusal(f"One condition names two things: {' '.join(clause.text)!r}; join them with and/or")
            clause.subject = token.meaning
        elif token.kind in ("op", "postfix"):
            if clause.op and token.kind == "op":
                raise _refusal(f"One condition has two comparisons: {' '.join(clause.text)!r}")
            clause.op = token.meaning
        elif token.kind == "num":
            if clause.value is not None:
                raise _refusal(f"One condition has two amounts: {' '.join(clause.text)!r}")
            clause.value = token.value
        elif token.kind == "unit":
            clause.days_per_unit = int(token.value)
    if not clauses[-1].text:
        raise _refusal("The prompt ends with 'and' or 'or'")
    return clauses, joins


def _rule(clause: Clause, previous: Clause | None) -> rules.Rule:
    said = " ".join(clause.text) or "(nothing)"
    kind = clause.subject or (previous.subject if previous else None)
    if kind is None:
        raise _refusal(f"{said!r} does not say spend, visits or inactivity")
    clause.subject = kind  # a following clause without a subject continues this one
    if clause.value is None:
        raise _refusal(f"{said!r} has no number")
    if kind == "visits" and clause.days_per_unit:
        kind = "active"  # "visited in the last 30 days" is about recency, not a count
    if kind in ("spend", "visits"):
        if clause.days_per_unit:
            raise _refusal(f"{said!r} mixes {kind} with a duration")
        if clause.op is None:
            raise _refusal(f"{said!r} needs a comparison such as 'more than', 'at most' or 'exactly'")
        return _checked(kind, clause.op, clause.value, said)
    if not clause.days_per_unit:
        raise _refusal(f"{said!r} needs a duration in days, weeks, months or years")
    days = round(clause.value * clause.days_per_unit)
    default_op = {"inactive": ">", "active": "<"}.get(kind)
    op = clause.op or default_op
    if op is None:
        raise _refusal(f"{said!r} needs a comparison such as 'more than' or 'within'")
    return _checked("inactive_days", op, days, said)


def _checked(field_name: str, op: str, value: float, said: str) -> rules.Rule:
    try:
        node = rules.parse({"field": field_name, "op": op, "value": int(value) if value == int(value) else value})
    except InvalidInput as exc:
        raise _refusal(f"{said!r}: {exc.details[0]['msg']}") from exc
    assert isinstance(node, rules.Rule)
    return node


def _combine(rule_list: list[rules.Rule], joins: list[str]) -> rules.Group:
    """`and` binds tighter than `or`, as people read it."""
    groups: list[list[rules.Rule]] = [[rule_list[0]]]
    for join, rule in zip(joins, rule_list[1:]):
        if join == "or":
            groups.append([rule])
        else:
            groups[-1].append(rule)
    if len(groups) == 1:
        return rules.Group("and", tuple(groups[0]))
    return rules.Group("or", tuple(g[0] if len(g) == 1 else rules.Group("and", tuple(g)) for g in groups))
