"""The offline natural-language → rules parser. A prompt is read as conditions joined by and/or (or simply one
after another: "loyal customers with 20+ visits who haven't been active for 2 weeks"); each condition is a subject
(spend, visits, recency, signup, tags, SKUs, consent, an attribute), maybe a negation, a comparison, a number
and a duration, or a list of tags, SKUs or known attribute values. Whatever it cannot map is reported, never
guessed."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from crm import rules
from crm.ai.prompt_words import (
    ACTIVE,
    COUNT,
    INACTIVE,
    LAST_ACTIVE,
    MONEY,
    ORDER,
    PURCHASE,
    SIGNUP,
    SKUS,
    SUBSCRIBED,
    TAGS,
    UNSUBSCRIBED,
    BrandWords,
    Token,
    tokens,
    vocabulary,
)
from crm.errors import InvalidInput
from crm.services.attributes import KnownAttributes

FLIPPED = {">": "<=", ">=": "<", "<": ">=", "<=": ">", "==": "!=", "!=": "=="}
DAY_SUBJECTS = (ACTIVE, INACTIVE, LAST_ACTIVE, SIGNUP)
CONSENT = (SUBSCRIBED, UNSUBSCRIBED)
# Subjects that two words of one condition may share: "placed 4 orders", "purchases worth 2 lakh".
SAME_SUBJECT = {frozenset((COUNT, ORDER)): COUNT, frozenset((MONEY, PURCHASE)): MONEY,
                frozenset((PURCHASE, ORDER)): PURCHASE}
FIELD_NAMES_IN_DAYS = {"inactive_days", "signup_days"}
# Suggestions are looked for among every known word and value; a prompt of many unknown words gets a few.
SUGGESTED = 3
PURCHASE_SUBJECTS = (PURCHASE, ORDER, SKUS)
TAG_ITEMS = ("unknown", "code", "descriptor", "value")  # a tag may be any word: "tagged vip"
SKU_ITEMS = ("unknown", "code")


@dataclass
class Clause:
    subject: str | None = None
    weak: str | None = None  # from a noun such as "spenders": used only when nothing else names the subject
    key: str | None = None
    op: str | None = None
    window: bool = False  # "in the last 30 days", "within a week"
    value: float | None = None
    days: int | None = None
    vague_unit: str | None = None  # "for months"
    counted: bool = False  # "times", "once", or a noun after its number ("4 orders")
    negated: bool = False
    listed: Token | None = None
    boolean: bool | None = None
    descriptive: bool = False
    named_in_days: bool = False  # by a field name counted in days: "inactive_days > 30"
    text: list[str] = field(default_factory=list)

    @property
    def said(self) -> str:
        return " ".join(self.text)

    @property
    def complete(self) -> bool:
        return (self.value is not None or self.listed is not None or self.boolean is not None
                or self.subject in CONSENT)

    @property
    def bare(self) -> bool:
        """Words that describe customers but select none ("big spenders", "loyal")."""
        return (self.subject is None and self.key is None and self.op is None and self.value is None
                and self.listed is None and self.boolean is None and not self.negated and self.days is None)


def parse_prompt(prompt: str, known: KnownAttributes | None = None) -> tuple[rules.Node, str]:
    """Rules and an explanation for a prompt; InvalidInput naming the words it could not map."""
    known = known or KnownAttributes()
    brand = BrandWords.of(known)
    words = _lists(_negated_numbers(_or_more_than(tokens(prompt, brand))))
    unknown = [t.text for t in words if t.kind == "unknown"]
    if unknown:
        suggest = _suggester(brand)
        named = [f"{w!r}{suggest(w) if i < SUGGESTED else ''}" for i, w in enumerate(unknown)]
        raise _refusal(f"Did not understand: {', '.join(named)}",
                       [{"loc": ["body", "prompt"], "msg": f"unknown word {w}"} for w in named])
    for token in words:
        if token.kind == "num" and not abs(token.value) <= rules.MAX_ATTRIBUTE_NUMBER:
            raise _refusal(f"{token.text[:40]!r} is too large a number")
    clauses, joins = _without_bare(*_clauses(_expand_between(words)))
    _refuse_unclear_negation(clauses, joins)
    rule_list: list[dict[str, Any]] = []
    for i, clause in enumerate(clauses):
        if i:
            _inherit(clause, clauses[i - 1])
        rule_list.append(_rule(clause, known))
    group = _combine([_checked(rule, clause.said, known) for rule, clause in zip(rule_list, clauses)], joins)
    return group, f"Customers who {rules.describe(group)}."


def _refusal(message: str, details: list[dict] | None = None) -> InvalidInput:
    return InvalidInput(message, details or [{"loc": ["body", "prompt"], "msg": message}], code="prompt_not_understood")


def _suggester(brand: BrandWords):
    known_words = vocabulary(brand)

    def suggest(word: str) -> str:
        word = word.lower()
        alike = [w for w in known_words if abs(len(w) - len(word)) <= 2 and w != word]
        close = difflib.get_close_matches(word, alike, n=1, cutoff=0.8)
        return f" (did you mean {known_words[close[0]]!r}?)" if close else ""
    return suggest


def _or_more_than(words: list[Token]) -> list[Token]:
    """"60 days or fewer than 2 visits" joins a second comparison; "or fewer" alone ends the first."""
    out: list[Token] = []
    for i, token in enumerate(words):
        join, _, rest = token.text.lower().partition(" ")
        if (token.kind == "postfix" and join in ("or", "and") and i + 1 < len(words)
                and words[i + 1].text.lower() == "than"):
            out += [Token("join", join, text=join), Token("op", token.meaning.rstrip("="), text=f"{rest} than")]
        else:
            out.append(token)
    return out


def _negated_numbers(words: list[Token]) -> list[Token]:
    """"spent not 0" compares: a negation right before a number is `!=`."""
    return [Token("op", "!=", text=t.text) if t.kind == "neg" and i + 1 < len(words) and words[i + 1].kind == "num"
            else t for i, t in enumerate(words)]


def _lists(words: list[Token]) -> list[Token]:
    """Tags after "tagged" (or before "tag"), SKU codes and known attribute values become one list token each,
    with the joins between their items ("tagged vip or gold", "in Mumbai, Delhi or Pune")."""
    out: list[Token] = []
    i = 0
    bought = False  # the last subject named was a purchase: "bought TEA-01 but never MUG-7"
    while i < len(words):
        token = words[i]
        if token.kind == "subject":
            bought = token.meaning in PURCHASE_SUBJECTS
        if token.kind == "subject" and token.meaning in (TAGS, SKUS):
            items = TAG_ITEMS if token.meaning == TAGS else SKU_ITEMS
            if i + 1 < len(words) and words[i + 1].kind in items:
                listed, i = _collect(words, i + 1, items, token.meaning)
                listed.text = f"{token.text} {listed.text}"
                out.append(listed)
                continue
            if token.meaning == TAGS and token.text.lower() in ("tag", "tags") and out and out[-1].kind in TAG_ITEMS:
                item = out.pop()
                out.append(Token("list", TAGS, text=f"{item.text} {token.text}", items=[item]))
                i += 1
                continue
        if token.kind == "value" or (token.kind == "code" and bought):
            listed, i = _collect(words, i, (token.kind,), SKUS if token.kind == "code" else "value")
            out.append(listed)
            continue
        if token.kind == "code":
            token = Token("unknown", text=token.text)  # "b2b", "Q1", "zone5": no purchase word makes it a SKU
        out.append(token)
        i += 1
    return out


def _collect(words: list[Token], start: int, kinds: tuple[str, ...], meaning: str) -> tuple[Token, int]:
    items, joined, i = [words[start]], set(), start + 1
    while i + 1 < len(words) and words[i].kind == "join" and words[i + 1].kind in kinds:
        if words[i].text != ",":
            joined.add(words[i].meaning)
        items.append(words[i + 1])
        i += 2
    text = " ".join(t.text for t in words[start:i])
    return Token("list", meaning, text=text, items=items, joined=joined), i


def _expand_between(words: list[Token]) -> list[Token]:
    """`between 1k and 5k` is `at least 1k and at most 5k`."""
    out: list[Token] = []
    i = 0
    while i < len(words):
        if words[i].kind == "between":
            since_join = next((j for j in range(i - 1, -1, -1) if words[j].kind == "join"), -1)
            if any(w.kind == "neg" for w in words[since_join + 1:i]):
                raise _refusal("'not between' is unclear; say 'under … or over …'")
            try:
                join = next(j for j in range(i + 1, len(words)) if words[j].kind == "join")
            except StopIteration:
                raise _refusal("'between' needs two amounts joined by 'and'") from None
            out += [Token("op", ">=", text="at least"), *words[i + 1:join], Token("join", "and", text="and"),
                    Token("op", "<=", text="at most")]
            i = join + 1
            continue
        out.append(words[i])
        i += 1
    return out


def _clauses(words: list[Token]) -> tuple[list[Clause], list[str]]:
    clauses, joins = [Clause()], []
    previous: Token | None = None
    for token in words:
        clause = clauses[-1]
        if token.kind == "stop":
            previous = token  # "in Pune with 10+ visits": the "with" parts two conditions
            continue
        if token.kind == "join":
            if clause.text:
                clauses.append(Clause())
                joins.append(token.meaning)
            previous = None
            continue
        if _starts_another(clause, token, previous):
            clause = Clause()
            clauses.append(clause)
            joins.append("and")
        clause.text.append(token.text)
        _take(clause, token, previous)
        previous = token
    if not clauses[-1].text:
        raise _refusal("The prompt ends with 'and' or 'or'")
    return clauses, joins


def _starts_another(clause: Clause, token: Token, previous: Token | None) -> bool:
    """A condition that is already whole ends where a word begins another: "...20+ visits who haven't..."."""
    if not clause.complete:
        return False
    if (token.kind == "subject" and previous is not None and previous.kind in ("num", "postfix")
            and _shared_subject(clause.subject, token.meaning)):
        return False  # "placed more than 4 orders"
    if clause.subject in CONSENT and clause.op is None and token.kind in ("op", "bool"):
        return False  # "subscribed == false"
    if token.kind in ("subject", "weak") and clause.subject is None and clause.key is None and clause.listed is None:
        return False  # the noun after its number: "20+ visits"
    if token.kind == "key" and clause.listed is not None and clause.listed.meaning == "value":
        return not all(token.meaning in item.candidates for item in clause.listed.items)  # "gold plan"
    if token.kind in ("subject", "weak", "key", "list", "neg"):
        return True
    if token.kind == "num":
        # "fourteen eleven" or "bought SKU-1 twice" is refused as two amounts or two things in one condition;
        # "in Pune with 10+ visits" is two conditions.
        return previous is None or previous.kind not in ("num", "list")
    return token.kind == "op"


def _take(clause: Clause, token: Token, previous: Token | None) -> None:
    kind, meaning = token.kind, token.meaning
    if kind == "descriptor":
        if previous is not None and previous.kind == "neg":
            raise _refusal(f"'{previous.text} {token.text}' negates a description, which selects no one; "
                           "say what it means, e.g. 'inactive for 90 days'")
        clause.descriptive = True
    elif kind == "subject":
        _take_subject(clause, meaning, token.text.lower(), after_number=previous is not None
                      and previous.kind in ("num", "postfix"))
    elif kind == "weak":
        clause.weak = clause.weak or meaning
    elif kind == "key":
        if clause.key and clause.key != meaning:
            raise _refusal(f"One condition names two attributes: {clause.said!r}; join them with and/or")
        clause.key = meaning
    elif kind == "list":
        if clause.listed is not None:
            raise _refusal(f"One condition has two lists: {clause.said!r}; join them with and/or")
        clause.listed = token
    elif kind == "num":
        if clause.value is not None:
            raise _refusal(f"One condition has two amounts: {clause.said!r}")
        clause.value = token.value
        clause.counted = clause.counted or meaning == "times"
    elif kind == "unit":
        clause.days = int(token.value)
        if clause.value is None:
            if token.plural:
                clause.vague_unit = token.text
            else:
                clause.value = 1  # "within the last week"
    elif kind in ("op", "window"):
        if kind == "window" and (clause.op is not None or clause.listed is not None or clause.counted):
            raise _refusal(f"{clause.said!r} has a duration, which fits activity and signup only: spend, visits, "
                           "tags and SKUs count over all time")
        if clause.op is not None:
            raise _refusal(f"One condition has two comparisons: {clause.said!r}")
        clause.op, clause.window = meaning, kind == "window"
    elif kind == "today":
        if clause.op is not None or clause.value is not None or clause.listed is not None:
            raise _refusal(f"One condition has two comparisons: {clause.said!r}")
        clause.op, clause.window, clause.value, clause.days = "<", True, 1, 1
    elif kind == "postfix":
        if clause.value is None or clause.op is not None:
            raise _refusal(f"{clause.said!r}: {token.text!r} must follow a number without another comparison")
        clause.op = meaning
    elif kind == "neg":
        if clause.negated:
            raise _refusal(f"{clause.said!r} has two negations; say it without them")
        clause.negated = True
    elif kind == "times":
        clause.counted = True
    elif kind == "bool":
        clause.boolean = meaning == "true"


def _take_subject(clause: Clause, subject: str, word: str, after_number: bool) -> None:
    if word in FIELD_NAMES_IN_DAYS:
        clause.days, clause.named_in_days = clause.days or 1, True
    if subject in (COUNT, ORDER, PURCHASE) and after_number:
        clause.counted = True  # "4 orders", "3 purchases"
    shared = _shared_subject(clause.subject, subject)
    if shared is None:
        raise _incomplete(clause) if not clause.complete else _refusal(
            f"One condition names two things: {clause.said!r}; join them with and/or")
    clause.subject = shared


def _shared_subject(subject: str | None, other: str) -> str | None:
    if subject is None or subject == other:
        return other
    return SAME_SUBJECT.get(frozenset((subject, other)))


def _incomplete(clause: Clause) -> InvalidInput:
    if clause.subject == SIGNUP:
        return _refusal(f"{clause.said!r} needs a period, such as 'in the last 30 days' or 'more than a year ago'")
    if clause.subject == TAGS:
        return _refusal(f"{clause.said!r} names no tag")
    return _refusal(f"{clause.said!r} has no number")


def _refuse_unclear_negation(clauses: list[Clause], joins: list[str]) -> None:
    """"haven't spent over 1k or visited more than 3 times" may mean neither: refused rather than half-negated."""
    for clause, join, following in zip(clauses, joins, clauses[1:]):
        if (clause.negated and join == "or" and not following.negated
                and following.subject in (MONEY, COUNT, PURCHASE, ORDER)):
            raise _refusal(f"'{clause.said} or {following.said}' is unclear: does the negation cover both? "
                           "Say each condition on its own")


def _without_bare(clauses: list[Clause], joins: list[str]) -> tuple[list[Clause], list[str]]:
    """Drops conditions that only describe ("big spenders, spent over 75k"); refuses a prompt of nothing else."""
    kept = [(i, c) for i, c in enumerate(clauses) if not c.bare]
    if not kept:
        weak = next((c for c in clauses if c.weak), None)
        if weak is not None:
            raise _refusal(f"{weak.said!r} has no number")
        said = " ".join(c.said for c in clauses).strip() or "the prompt"
        raise _refusal(f"{said!r} describes customers but gives no condition to select them by")
    kept_joins = [joins[i - 1] for i, _ in kept[1:]]
    return [c for _, c in kept], kept_joins


def _inherit(clause: Clause, previous: Clause) -> None:
    """A condition that names nothing continues the one before: "spent more than 1000 and less than 5000"."""
    names_nothing = clause.subject is None and clause.key is None and clause.listed is None and clause.weak is None
    if names_nothing and previous.listed is None and (clause.value is not None or clause.op is not None):
        clause.subject, clause.key, clause.weak = previous.subject, previous.key, previous.weak
        if previous.named_in_days and clause.days is None:
            clause.days, clause.named_in_days = 1, True  # "inactive_days > 30 and < 60"


def _rule(clause: Clause, known: KnownAttributes) -> dict[str, Any]:
    if clause.listed is not None:
        return _list_rule(clause)
    if clause.key is not None:
        if clause.subject is not None:
            raise _refusal(f"One condition names two things: {clause.said!r}; join them with and/or")
        return _attribute_rule(clause, known)
    subject = clause.subject or clause.weak
    if subject is None:
        raise _refusal(f"{clause.said!r} does not say spend, visits or inactivity")
    if clause.boolean is not None and subject not in CONSENT:
        raise _refusal(f"{clause.said!r}: true/false fits only subscribed or a yes/no attribute")
    if subject in CONSENT:
        if clause.value is not None or clause.days or (clause.op or "==") not in ("==", "!=") or (
                clause.op is not None and clause.boolean is None):
            raise _refusal(f"{clause.said!r}: subscription is only true or false")
        wanted = (subject == SUBSCRIBED) == (clause.boolean if clause.boolean is not None else True)
        if clause.op == "!=":
            wanted = not wanted
        return {"field": "subscribed", "op": "==", "value": wanted != clause.negated}
    if subject == TAGS:
        raise _incomplete(clause)
    if subject in (PURCHASE, ORDER, SKUS):
        subject = _purchase_subject(clause, subject)
    if subject == COUNT and (clause.days or clause.window):
        if clause.counted:
            raise _refusal(f"{clause.said!r}: visits count over all time, not over a period")
        subject = ACTIVE  # "visited in the last 30 days" is about recency, not a count
    if subject in DAY_SUBJECTS:
        return _days_rule(clause, subject)
    return _amount_rule(clause, subject)


def _purchase_subject(clause: Clause, subject: str) -> str:
    if subject == SKUS:
        raise _refusal(f"{clause.said!r} names no SKU, such as 'bought SKU-123'")
    if (clause.days or clause.window) and not clause.counted:
        return ACTIVE
    if clause.counted or (clause.value is None and clause.negated) or subject == ORDER:
        return COUNT  # "purchased twice", "never purchased", "ordered more than 3"
    return MONEY


def _amount_rule(clause: Clause, subject: str) -> dict[str, Any]:
    name = "spend" if subject == MONEY else "visits"
    if subject == MONEY and clause.counted:
        raise _refusal(f"{clause.said!r}: spend is an amount, not a number of times")
    if clause.days or clause.window:
        raise _refusal(f"{clause.said!r} mixes {name} with a duration; spend is counted over all time")
    if clause.value is None:
        if clause.negated and clause.op is None:
            return {"field": name, "op": "==", "value": 0}  # "never visited", "no orders"
        raise _incomplete(clause)
    op = clause.op or ("==" if subject == COUNT or clause.value == 0 else None)
    if op is None:
        raise _refusal(f"{clause.said!r} needs a comparison such as 'more than', 'at most' or 'exactly'")
    return {"field": name, "op": FLIPPED[op] if clause.negated else op, "value": clause.value}


def _days_rule(clause: Clause, subject: str) -> dict[str, Any]:
    if clause.vague_unit and clause.value is None:
        raise _refusal(f"{clause.said!r}: {clause.vague_unit!r} needs a number")
    if clause.value is None:
        raise _incomplete(clause)
    if not clause.days:
        raise _refusal(f"{clause.said!r} needs a duration in days, weeks, months or years")
    days = round(clause.value * clause.days)
    field_name = "signup_days" if subject == SIGNUP else "inactive_days"
    if subject == INACTIVE:
        if clause.negated or clause.window:
            raise _refusal(f"{clause.said!r} is unclear; say 'active in the last ...' or 'inactive for more than ...'")
        return {"field": field_name, "op": clause.op or ">", "value": days}
    if clause.window:
        # "active in the last 30 days" < 30; its negation, "no purchase in the last 30 days", is the rest: >= 30.
        return {"field": field_name, "op": ">=" if clause.negated else "<", "value": days}
    if subject == ACTIVE and clause.negated:
        return {"field": field_name, "op": clause.op or ">", "value": days}  # "haven't been active for 2 weeks"
    if subject == ACTIVE:
        # "active for more than 30 days" is not inactivity, and "active 3 days ago" names a day, not a period.
        raise _refusal(f"{clause.said!r} is unclear; say 'active in the last …' or 'inactive for …'")
    op = clause.op
    if op is None:
        raise _refusal(f"{clause.said!r} needs a comparison such as 'in the last' or 'more than ... ago'")
    return {"field": field_name, "op": FLIPPED[op] if clause.negated else op, "value": days}


def _list_rule(clause: Clause) -> dict[str, Any]:
    listed = clause.listed
    assert listed is not None
    if (clause.value is not None or clause.days or clause.window
            or clause.subject not in (None, PURCHASE, ORDER, SKUS, TAGS) or clause.boolean is not None
            or (clause.key is not None and listed.meaning != "value")):
        raise _refusal(f"One condition names two things: {clause.said!r}; join them with and/or")
    if clause.op is not None and (listed.meaning != "value" or clause.op not in ("==", "!=")):
        raise _refusal(f"{clause.said!r}: {clause.op!r} does not fit a list of tags, SKUs or values")
    if len(listed.joined) > 1:
        raise _refusal(f"{listed.text!r} mixes 'and' with 'or'; write it as two conditions")
    if listed.meaning == "value":
        return _value_rule(clause, listed)
    values = [item.text.lower() if listed.meaning == TAGS else item.text for item in listed.items]
    op = "has_none" if clause.negated else "has_all" if listed.joined == {"and"} else "has_any"
    return {"field": "tags" if listed.meaning == TAGS else "skus", "op": op, "value": values}


def _value_rule(clause: Clause, listed: Token) -> dict[str, Any]:
    keys = set.intersection(*(set(item.candidates) for item in listed.items))
    if clause.key is not None:
        if clause.key not in keys:
            holders = sorted(set().union(*(item.candidates for item in listed.items)))
            raise _refusal(f"{clause.said!r}: {listed.text!r} is a known {' or '.join(holders)}, not {clause.key}")
        keys = {clause.key}
    if not keys:
        raise _refusal(f"{listed.text!r} are values of different attributes; join them with and/or")
    if len(keys) > 1:
        raise _refusal(f"{listed.text!r} could be {' or '.join(sorted(keys))}; say which, e.g. "
                       f"'{listed.text} {sorted(keys)[0]}'")
    key = keys.pop()
    # Every spelling the registry has seen: "Mumbai" and "mumbai" are one city to the person asking.
    values = list(dict.fromkeys(spelling for item in listed.items for spelling in item.candidates[key]))
    negated = clause.negated != (clause.op == "!=")
    if clause.op not in (None, "==", "!="):
        raise _refusal(f"{clause.said!r}: {key} is text; it can only be or not be a value")
    if len(values) == 1:
        return {"field": f"attributes.{key}", "op": "!=" if negated else "==", "value": values[0]}
    if len(listed.items) > 1 and listed.joined == {"and"} and not negated:
        raise _refusal(f"{clause.said!r}: a customer has one {key}; say {' or '.join(values)!r}")
    return {"field": f"attributes.{key}", "op": "not_in" if negated else "in", "value": values}


def _attribute_rule(clause: Clause, known: KnownAttributes) -> dict[str, Any]:
    key = clause.key
    assert key is not None
    kind = known.types.get(key)
    field_name = f"attributes.{key}"
    if kind == "number" and clause.boolean is None and not clause.days:
        if clause.value is None:
            raise _incomplete(clause)
        op = clause.op or "=="
        return {"field": field_name, "op": FLIPPED[op] if clause.negated else op, "value": clause.value}
    if kind == "boolean" and clause.boolean is not None and clause.value is None:
        wanted = clause.boolean ^ clause.negated ^ (clause.op == "!=")
        return {"field": field_name, "op": "==", "value": wanted}
    if kind == "string":
        examples = ", ".join(known.values.get(key, [])[:5]) or "none known yet"
        raise _refusal(f"{clause.said!r}: {key} is text; name one of its known values ({examples})")
    raise _refusal(f"{clause.said!r}: {key} is a {kind}; write this condition as a rule")


def _checked(rule: dict[str, Any], said: str, known: KnownAttributes) -> rules.Node:
    value = rule["value"]
    if isinstance(value, float) and value == int(value):
        rule = {**rule, "value": int(value)}
    try:
        return rules.parse(rule, attributes=known.types)
    except InvalidInput as exc:
        raise _refusal(f"{said!r}: {exc.details[0]['msg']}") from exc


def _combine(rule_list: list[rules.Node], joins: list[str]) -> rules.Group:
    """`and` binds tighter than `or`, as people read it."""
    groups: list[list[rules.Node]] = [[rule_list[0]]]
    for join, rule in zip(joins, rule_list[1:]):
        if join == "or":
            groups.append([rule])
        else:
            groups[-1].append(rule)
    if len(groups) == 1:
        return rules.Group("and", tuple(groups[0]))
    return rules.Group("or", tuple(g[0] if len(g) == 1 else rules.Group("and", tuple(g)) for g in groups))
