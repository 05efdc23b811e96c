"""The offline natural-language → rules parser. A prompt is read as conditions joined by and/or (or simply one
after another: "loyal customers with 20+ visits who haven't been active for 2 weeks"); each condition is a subject
(spend, visits, recency, signup, tags, SKUs and products, consent, an attribute, orders and engagement in a window,
a campaign), maybe a negation, a comparison, a number or a range, a duration or a period, or a list of tags,
products or known attribute values.

Every word is accounted for: it is filler, or it gave a piece of a condition that a rule used, or it describes
customers ("loyal", "whales") and a rule says how ("20+ visits"); otherwise the prompt is refused naming it. So a
rule never means less than the prompt said, and whatever the parser cannot map is reported, never guessed."""
from __future__ import annotations

import difflib
from datetime import date, timedelta
from typing import Any

from crm import rules
from crm.ai import refuse_unsatisfiable
from crm.ai import registry as brand_registry
from crm.ai.clause_rules import CONSENT, Clause, incomplete, rules_of
from crm.ai.prompt_tokens import BrandWords, Token, refusal, tokens, vocabulary
from crm.ai.prompt_words import (
    COUNT,
    DESCRIPTIVE_SUBJECTS,
    ENGAGEMENT,
    EXPLAINED_BY,
    FREQUENCY_FIELDS,
    INACTIVE,
    LAPSE_FIELDS,
    MONEY,
    ORDER,
    PURCHASE,
    SKUS,
    TAGS,
    UNSUBSCRIBED,
    VALUE_FIELDS,
)
from crm.errors import InvalidInput
from crm.services.attributes import KnownAttributes

# Subjects that two words of one condition may share: "placed 4 orders", "purchases worth 2 lakh".
SAME_SUBJECT = {frozenset((COUNT, ORDER)): ORDER, frozenset((MONEY, PURCHASE)): MONEY,
                frozenset((PURCHASE, ORDER)): PURCHASE}
FIELD_NAMES_IN_DAYS = {"inactive_days", "signup_days"}
PURCHASE_SUBJECTS = (PURCHASE, ORDER, SKUS)
# Suggestions are looked for among every known word and value; a prompt of many unknown words gets a few.
SUGGESTED = 3
# After "tagged" any word is a tag; after "bought", codes and product names are what was bought.
TAG_ITEMS = ("unknown", "code", "descriptor", "value", "tag", "brand", "product", "key", "flag")
SKU_ITEMS = ("unknown", "code", "product")
ARTICLES = ("a", "an", "the")
RELATIVES = ("who", "that", "which")
# Tokens left without a meaning of their own: a word that needed a neighbour it did not get ("this" without
# "week", "since" without a date, a month name outside a date).
UNMAPPED = ("unknown", "this", "last", "past", "start", "month", "ordinal", "date", "multiplier", "word")
HINTS = {VALUE_FIELDS: "'spent over 10k'", FREQUENCY_FIELDS: "'5+ orders'", LAPSE_FIELDS: "'inactive for 90 days'"}


def parse_prompt(prompt: str, known: KnownAttributes | None = None) -> tuple[rules.Node, str]:
    """Rules and an explanation for a prompt; InvalidInput naming the words it could not map. `known` is the
    attribute registry's knowledge, or a BrandRegistry that also knows tags, products, campaigns and today."""
    registry = brand_registry.of(known)
    brand = BrandWords.of(registry, prompt)
    found, corrected = tokens(prompt, brand, registry.day())
    words = _lists(_resolved(_negated_numbers(_or_more_than(found))))
    _refuse_unknown(words, brand)
    for token in words:
        if token.kind in ("num", "range") and not max(abs(token.value), abs(token.high)) <= rules.MAX_ATTRIBUTE_NUMBER:
            raise refusal(f"{token.text[:40]!r} is too large a number")
    clauses, described = _without_bare(_clauses(words))
    _refuse_unclear_negation(clauses)
    _link(clauses)
    groups: list[list[dict[str, Any]]] = []
    previous_campaign: Token | None = None
    for clause in clauses:
        groups.append(rules_of(clause, registry, previous_campaign))
        previous_campaign = clause.campaign or previous_campaign
        if unused := clause.unused():
            raise refusal(f"{clause.said!r}: {', '.join(repr(t.text) for t in unused)} would be left out of the "
                          "rules; say the condition without it, or as a condition of its own")
    described += [t for clause in clauses for piece in ("descriptor", "weak") if piece not in clause.used
                  for t in clause.sources.get(piece, [])]
    _refuse_unexplained(described, {rule["field"] for group in groups for rule in group})
    checked = [[_checked(rule, clause.said, registry) for rule in group] for group, clause in zip(groups, clauses)]
    group = _combine(checked, [clause.joined_by or "and" for clause in clauses[1:]])
    refuse_unsatisfiable(group, code="prompt_not_understood")
    said = rules.describe(group)
    for campaign_id, name in registry.campaigns:
        said = said.replace(f"campaign {campaign_id}", f"campaign {name!r}")
    readings = _periods_read(clauses, registry.day()) + [f"{a!r} as {b!r}" for a, b in corrected.items()]
    read_as = f" Read {', '.join(readings)}." if readings else ""
    return group, f"Customers who {said}.{read_as}"


def _periods_read(clauses: list[Clause], today: date) -> list[str]:
    """How each period said in other words than days was counted: "'this month' as the 18 days since 1 November
    (today included)", "'in the past month' as the last 30 days"."""
    readings: list[str] = []
    for clause in clauses:
        said = clause.sources.get("window", [])
        if clause.period is None or not said:
            continue
        calendar = next((t for t in said if t.kind == "calendar" and t.meaning == "period"
                         and t.text.lower() != "today"), None)
        if calendar is not None:
            start = today - timedelta(days=clause.period - 1)
            days = "today" if clause.period == 1 else \
                f"the {clause.period} days since {start.day} {start:%B} (today included)"
            reading = f"{calendar.text!r} as {days}"
        elif any(t.kind == "unit" and t.meaning != "day" for t in said):
            reading = f"{' '.join(t.text for t in said)!r} as the last {clause.period} days"
        else:
            continue
        if reading not in readings:
            readings.append(reading)
    return readings


def _refuse_unknown(words: list[Token], brand: BrandWords) -> None:
    unknown = [t.text for t in words if t.kind in UNMAPPED]
    if unknown:
        suggest = _suggester(brand)
        named = [f"{w!r}{suggest(w) if i < SUGGESTED else ''}" for i, w in enumerate(unknown)]
        raise refusal(f"Did not understand: {', '.join(named)}",
                      [{"loc": ["body", "prompt"], "msg": f"unknown word {w}"} for w in named])


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


def _resolved(words: list[Token]) -> list[Token]:
    """A name with several senses (a tag that is also a product) takes the one its neighbours ask for: a product
    after "bought", a campaign with "opened" or "campaign"; otherwise the one sense left, or a refusal."""
    out: list[Token] = []
    context: str | None = None
    for i, token in enumerate(words):
        if token.kind == "subject":
            context = token.meaning
        if token.kind == "brand":
            following = words[i + 1] if i + 1 < len(words) else None
            senses = dict(token.senses)
            if context in PURCHASE_SUBJECTS and "product" in senses:
                senses = {"product": senses["product"]}
            elif "campaign" in senses and (context in ENGAGEMENT or getattr(following, "kind", "") == "noun"):
                senses = {"campaign": senses["campaign"]}
            elif context != TAGS:
                senses = {s: m for s, m in senses.items() if s not in ("product", "campaign")} or senses
            if len(senses) > 1 and context != TAGS:
                raise refusal(f"{token.text!r} could be {_senses(token)}; say which")
            kind = next(iter(senses)) if context != TAGS else "brand"
            token = Token(kind, senses[kind] if kind in ("key", "flag", "tag") else "", text=token.text,
                          senses=senses if context != TAGS else token.senses)
        out.append(token)
    return out


def _senses(token: Token) -> str:
    said = {"value": lambda m: " or ".join(f"a known {key}" for key in m), "tag": lambda m: f"the tag {m}",
            "product": lambda m: "a product (say 'bought …')", "campaign": lambda m: "a campaign (say 'opened …')",
            "key": lambda m: f"the attribute {m}", "flag": lambda m: f"the attribute {m}"}
    return " or ".join(said[sense](meaning) for sense, meaning in token.senses.items())


def _lists(words: list[Token]) -> list[Token]:
    """Tags after "tagged" (or before "tag"), known tags, SKU codes and products after a purchase word, and known
    attribute values become one list token each, with the joins between their items ("tagged vip or gold",
    "in Mumbai, Delhi or Pune", "bought green tea and a ceramic mug")."""
    out: list[Token] = []
    i = 0
    bought = False  # the last subject named was a purchase: "bought TEA-01 but never MUG-7"
    while i < len(words):
        token = words[i]
        if token.kind == "subject":
            bought = token.meaning in PURCHASE_SUBJECTS
        if token.kind == "subject" and token.meaning in (TAGS, SKUS):
            items = TAG_ITEMS if token.meaning == TAGS else SKU_ITEMS
            article = i + 1 < len(words) and words[i + 1].kind == "stop" and words[i + 1].text.lower() in ARTICLES
            start = i + 1 + article
            if start < len(words) and words[start].kind in items:
                listed, i = _collect(words, start, items, token.meaning)
                listed.text = f"{token.text} {listed.text}"
                out.append(listed)
                continue
            if token.meaning == TAGS and token.text.lower() in ("tag", "tags") and out and (
                    out[-1].kind in TAG_ITEMS or (out[-1].kind == "list" and out[-1].meaning == TAGS)):
                item = out.pop()
                listed = item if item.kind == "list" else Token("list", TAGS, text=item.text, items=[item])
                listed.text = f"{listed.text} {token.text}"  # "with the vip tag"
                out.append(listed)
                i += 1
                continue
        if token.kind in ("value", "tag") or (token.kind in ("code", "product") and bought):
            kinds = ("code", "product") if token.kind in ("code", "product") else (token.kind,)
            meaning = {"value": "value", "tag": TAGS}.get(token.kind, SKUS)
            listed, i = _collect(words, i, kinds, meaning)
            out.append(listed)
            continue
        if token.kind == "code":
            token = Token("unknown", text=token.text)  # "Q1", "zone5": no purchase word makes it a SKU
        if token.kind == "product":
            raise refusal(f"{token.text!r} is a product; say 'bought {token.text}'")
        out.append(token)
        i += 1
    return out


def _collect(words: list[Token], start: int, kinds: tuple[str, ...], meaning: str) -> tuple[Token, int]:
    items, joined, i = [words[start]], set(), start + 1
    while i + 1 < len(words) and words[i].kind == "join":
        at = i + 1
        while at < len(words) and words[at].kind == "stop" and words[at].text.lower() in ARTICLES:
            at += 1  # "green tea and a ceramic mug"
        if at >= len(words) or words[at].kind not in kinds:
            break
        if words[i].text != ",":
            joined.add(words[i].meaning)
        items.append(words[at])
        i = at + 1
    text = " ".join(t.text for t in words[start:i])
    return Token("list", meaning, text=text, items=items, joined=joined), i


def _clauses(words: list[Token]) -> list[Clause]:
    clauses = [Clause()]
    previous: Token | None = None
    for token in words:
        clause = clauses[-1]
        if token.kind == "stop":
            previous = token  # "in Pune with 10+ visits": the "with" parts two conditions
            continue
        if token.kind == "join":
            if token.text == "," and clause.period_first and not clause.names_a_condition:
                pass  # "in the last 30 days, bought TEA-01": the period is the window of what follows
            elif clause.text:
                clauses.append(Clause(joined_by=token.meaning))
            elif len(clauses) > 1 and token.text != ",":
                clause.joined_by = token.meaning  # ", or"
            previous = None
            continue
        if _starts_another(clause, token, previous):
            clause = Clause()
            clauses.append(clause)
        clause.text.append(token.text)
        _take(clause, token, previous)
        previous = token
    if not clauses[-1].text:
        raise refusal("The prompt ends with 'and' or 'or'")
    return clauses


def _starts_another(clause: Clause, token: Token, previous: Token | None) -> bool:
    """A condition that is already whole ends where a word begins another: "...20+ visits who haven't..."."""
    if not clause.complete or clause.window:
        return False
    if token.kind in ("window", "calendar") and previous is not None and previous.text.lower() in RELATIVES:
        return True  # "in Mumbai who in the last 30 days bought TEA-01": the period begins the next condition
    if (token.kind == "subject" and previous is not None and previous.kind in ("num", "postfix", "range")
            and _shared_subject(clause.subject, token.meaning)):
        return False  # "placed more than 4 orders"
    if clause.subject in CONSENT and clause.op is None and token.kind in ("op", "bool"):
        return False  # "subscribed == false"
    names_nothing = clause.subject is None and clause.key is None and clause.listed is None and clause.campaign is None
    if token.kind in ("subject", "weak", "key", "flag") and names_nothing:
        return False  # the noun after its number: "20+ visits", "more than 1000 loyalty points"
    if token.kind == "subject" and token.meaning in ENGAGEMENT and clause.subject is None and clause.key is None \
            and clause.listed is None:
        return False  # "resend Black Friday to non-openers"
    if token.kind == "key" and clause.listed is not None and clause.listed.meaning == "value":
        return not all(token.meaning in item.candidates for item in clause.listed.items)  # "gold plan"
    if token.kind in ("subject", "weak", "key", "flag", "list", "neg", "campaign"):
        return True
    if token.kind in ("num", "range"):
        # "fourteen eleven" or "bought SKU-1 twice" is refused as two amounts or two things in one condition;
        # "in Pune with 10+ visits" is two conditions.
        return previous is None or previous.kind not in ("num", "list")
    return token.kind == "op"


def _take(clause: Clause, token: Token, previous: Token | None) -> None:
    """Records the piece of the condition this token gives, and that it gave it."""
    kind, meaning = token.kind, token.meaning
    piece = kind
    if kind == "descriptor":
        if previous is not None and previous.kind == "neg":
            raise refusal(f"'{previous.text} {token.text}' negates a description, which selects no one; "
                          "say what it means, e.g. 'inactive for 90 days'")
    elif kind == "subject":
        _take_subject(clause, token, after_number=previous is not None and previous.kind in ("num", "postfix", "range"))
        return
    elif kind == "weak":
        clause.weak = clause.weak or meaning
    elif kind in ("key", "flag"):
        if clause.key and clause.key != meaning:
            raise refusal(f"One condition names two attributes: {clause.said!r}; join them with and/or")
        clause.key, piece = meaning, "key"
        if kind == "flag":
            clause.boolean = True  # "students": is_student is true
            clause.note("boolean", token)
    elif kind == "list":
        if clause.listed is not None:
            raise refusal(f"One condition has two lists: {clause.said!r}; join them with and/or")
        clause.listed, piece = token, "listed"
    elif kind == "campaign":
        if clause.campaign is not None:
            raise refusal(f"One condition names two campaigns: {clause.said!r}; join them with and/or")
        clause.campaign = token
    elif kind == "num" and clause.window and clause.period_number is None:
        clause.period_number, piece = token.value, "window"  # "in the last 30 days"
    elif kind in ("num", "range"):
        if clause.value is not None or (kind == "range" and clause.op is not None):
            raise refusal(f"One condition has two amounts: {clause.said!r}")
        clause.value, piece = token.value, "value"
        if kind == "range":
            clause.high, clause.op = token.high, "between"
        if meaning == "times":
            clause.counted = True
            clause.note("counted", token)
    elif kind == "unit":
        _take_unit(clause, token)
        return
    elif kind in ("window", "calendar"):
        if clause.period is not None or (clause.window and kind == "window"):
            raise refusal(f"One condition has two periods: {clause.said!r}")
        if kind == "calendar":
            if clause.period_number is not None:
                raise refusal(f"One condition has two periods: {clause.said!r}")
            clause.period, clause.period_kind, clause.window = int(token.value), meaning, False
            clause.period_first = not clause.names_a_condition
        else:
            clause.window = True
        piece = "window"
    elif kind == "postfix":
        if clause.value is None or clause.op is not None:
            raise refusal(f"{clause.said!r}: {token.text!r} must follow a number without another comparison")
        clause.op, piece = meaning, "op"
    elif kind == "op":
        if clause.op is not None:
            raise refusal(f"One condition has two comparisons: {clause.said!r}")
        clause.op = meaning
    elif kind == "neg":
        if clause.negated:
            raise refusal(f"{clause.said!r} has two negations; say it without them")
        clause.negated, piece = True, "negated"
    elif kind == "times":
        clause.counted, piece = True, "counted"
    elif kind == "bool":
        clause.boolean, piece = meaning == "true", "boolean"
    elif kind not in ("currency", "noun", "pronoun", "alltime"):
        raise refusal(f"Did not understand {token.text!r} in {clause.said!r}")
    clause.note(piece, token)


def _take_unit(clause: Clause, token: Token) -> None:
    if clause.window and clause.period is None:
        if token.plural and clause.period_number is None:
            raise refusal(f"{clause.said!r}: {token.text!r} needs a number")
        clause.period = round((1 if clause.period_number is None else clause.period_number) * token.value)
        clause.period_kind, clause.window = "rolling", False
        clause.period_first = not clause.names_a_condition
        clause.note("window", token)
        return
    clause.unit = int(token.value)
    if clause.value is None:
        if token.plural:
            clause.vague_unit = token.text
        else:
            clause.value = 1  # "for a week" without its "a"
    clause.note("unit", token)


def _take_subject(clause: Clause, token: Token, after_number: bool) -> None:
    subject, word = token.meaning, token.text.lower()
    if word in FIELD_NAMES_IN_DAYS:
        clause.unit, clause.named_in_days = clause.unit or 1, True
    if subject in (COUNT, ORDER, PURCHASE) and after_number:
        clause.counted = True  # "4 orders", "3 purchases"
    held = clause.sources.get("subject", [])
    if (held and subject != clause.subject and all(t.text.lower() in DESCRIPTIVE_SUBJECTS for t in held)
            and set(clause.sources) <= {"subject", "negated", "descriptor", "weak"}):
        # "dormant customers (no activity for 120 days)": the first word only describes.
        clause.sources["descriptor"] = clause.sources.get("descriptor", []) + clause.sources.pop("subject")
        clause.subject = None
    shared = _shared_subject(clause.subject, subject)
    if shared is None:
        raise incomplete(clause) if not clause.complete else refusal(
            f"One condition names two things: {clause.said!r}; join them with and/or")
    clause.subject = shared
    clause.note("subject", token)


def _shared_subject(subject: str | None, other: str) -> str | None:
    if subject is None or subject == other:
        return other
    return SAME_SUBJECT.get(frozenset((subject, other)))


def _without_bare(clauses: list[Clause]) -> tuple[list[Clause], list[Token]]:
    """Sets aside conditions that only describe ("big spenders, spent over 75k", "lapsed customers, inactive 120+
    days"), to be checked against the rules at the end; refuses a prompt of nothing else."""
    for clause in clauses:
        held = clause.sources.get("subject", [])
        if held and set(clause.sources) <= {"subject", "descriptor", "weak"} and all(
                t.text.lower() in DESCRIPTIVE_SUBJECTS for t in held):
            clause.sources["descriptor"] = clause.sources.get("descriptor", []) + clause.sources.pop("subject")
            clause.subject = None
    kept = [c for c in clauses if not c.bare]
    if not kept:
        weak = next((c for c in clauses if c.weak), None)
        if weak is not None:
            raise refusal(f"{weak.said!r} has no number")
        said = " ".join(c.said for c in clauses).strip() or "the prompt"
        raise refusal(f"{said!r} describes customers but gives no condition to select them by")
    described = [t for c in clauses if c.bare for piece in ("descriptor", "weak") for t in c.sources.get(piece, [])]
    for i, clause in enumerate(clauses):
        if clause.bare and i + 1 < len(clauses) and clauses[i + 1].joined_by is None:
            clauses[i + 1].joined_by = clause.joined_by  # the description's join stands for what follows it
    return kept, described


def _refuse_unclear_negation(clauses: list[Clause]) -> None:
    """"haven't spent over 1k or visited more than 3 times" may mean neither: refused rather than half-negated. A
    condition that is itself a lack ("or inactive for a year", "or unsubscribed") leaves no doubt."""
    for clause, following in zip(clauses, clauses[1:]):
        if (clause.negated and following.joined_by == "or" and not following.negated
                and following.subject not in (INACTIVE, UNSUBSCRIBED)):
            raise _unclear_negation(clause, following)


def _unclear_negation(clause: Clause, following: Clause) -> InvalidInput:
    return refusal(f"'{clause.said} {following.joined_by} {following.said}' is unclear: does the negation cover "
                   "both? Say each condition on its own")


def _names_nothing(clause: Clause) -> bool:
    return (clause.subject is None and clause.key is None and clause.listed is None and clause.weak is None
            and clause.campaign is None and "pronoun" not in clause.sources)


def _continues(clause: Clause, previous: Clause) -> None:
    """A condition that names nothing continues the one its join ties it to: "spent more than 1000 and less than
    5000", "at least 3 but no more than 6 visits"; a period said once covers both."""
    clause.subject, clause.key, clause.weak = previous.subject, previous.key, previous.weak
    if previous.named_in_days and clause.unit is None:
        clause.unit, clause.named_in_days = 1, True  # "inactive_days > 30 and < 60"
    for one, other in ((clause, previous), (previous, clause)):
        if one.period is None and other.period is not None and "alltime" not in one.sources:
            one.period, one.period_kind = other.period, other.period_kind
    clause.use("window")
    previous.use("window")


def _bounds_each_side(first: Clause, second: Clause) -> bool:
    ops = {first.op, second.op}
    return len(ops) == 2 and all(op in (">", ">=", "<", "<=") for op in ops) and len({op[0] for op in ops}) == 2


def _link(clauses: list[Clause]) -> None:
    """What a condition takes from the one its join ties it to, and what may not be left to the reader."""
    for i, clause in enumerate(clauses):
        if not _names_nothing(clause) or clause.value is None:
            continue
        previous = clauses[i - 1] if i else None
        following = clauses[i + 1] if i + 1 < len(clauses) else None
        if previous is not None and clause.joined_by is not None and previous.listed is None \
                and previous.campaign is None:
            _continues(clause, previous)
        elif (following is not None and following.joined_by == "and" and not _names_nothing(following)
              and following.value is not None and _bounds_each_side(clause, following)):
            _continues(clause, following)
    for clause, following in zip(clauses, clauses[1:]):
        for one, other in ((clause, following), (following, clause)):
            shares = following.joined_by is not None and _engagement_alone(one)
            if shares and clause.negated and not following.negated:
                raise _unclear_negation(clause, following)  # "didn't open and click the Diwali Sale"
            if shares and other.campaign is not None and other.period is None:
                one.campaign = other.campaign  # "clicked but did not convert from the Diwali Sale"
                continue
            if one.period is not None or other.period is None:
                continue
            if shares and other.subject in ENGAGEMENT:
                one.period, one.period_kind = other.period, other.period_kind  # "opened or clicked in 30 days"
            elif _may_take_a_period(one) and _may_share_its_period(other):
                said = " ".join(t.text for t in other.sources.get("window", []))
                raise refusal(f"Does {said!r} cover {one.said!r} too? Say the period for each condition, or leave "
                              "it out of the one it does not cover")


def _engagement_alone(clause: Clause) -> bool:
    """Opened, clicked or received with neither a period nor a campaign: it borrows the one its neighbour names."""
    return (clause.subject in ENGAGEMENT and clause.campaign is None and "pronoun" not in clause.sources
            and clause.period is None and not clause.window)


def _may_share_its_period(clause: Clause) -> bool:
    """A period said of spend, counts, products or engagement, which a reader may carry over to its neighbour; not
    one that is part of a recency or a signup ("haven't purchased in 60 days", "new customers this week")."""
    if clause.listed is not None:
        return clause.listed.meaning == SKUS
    return clause.subject in ENGAGEMENT or (clause.subject in (MONEY, PURCHASE, ORDER, COUNT)
                                            and clause.value is not None)


def _may_take_a_period(clause: Clause) -> bool:
    """Spend, counts and products, which a reader may take to be over the period said next to them ("spent over 1k
    this month and visited 5 times"); unless the condition says it is over all time ("ever", "overall")."""
    if "alltime" in clause.sources:
        return False
    if clause.listed is not None:
        return clause.listed.meaning == SKUS
    if clause.subject == MONEY or (clause.subject is None and clause.weak == MONEY):
        return True
    return clause.subject in (PURCHASE, ORDER, COUNT) and clause.value is not None


def _refuse_unexplained(described: list[Token], fields: set[str]) -> None:
    for token in described:
        word = token.text.lower()
        explained_by = EXPLAINED_BY.get(word, frozenset())
        if not explained_by & fields:
            hint = next((h for group, h in HINTS.items() if explained_by <= group | FREQUENCY_FIELDS
                         and explained_by & group), "'spent over 10k'")
            raise refusal(f"{token.text!r} says nothing the rules can check: say what makes a customer "
                          f"{token.text}, such as {hint}, or use a tag: 'tagged {word}'")


def _checked(rule: dict[str, Any], said: str, known: KnownAttributes) -> rules.Node:
    try:
        return rules.parse(rule, attributes=known.types)
    except InvalidInput as exc:
        raise refusal(f"{said!r}: {exc.details[0]['msg']}") from exc


def _combine(clause_rules: list[list[rules.Node]], joins: list[str]) -> rules.Group:
    """`and` binds tighter than `or`, as people read it; a condition's own rules (a range) stay together."""
    groups: list[list[rules.Node]] = [list(clause_rules[0])]
    for join, own in zip(joins, clause_rules[1:]):
        if join == "or":
            groups.append(list(own))
        else:
            groups[-1].extend(own)
    if len(groups) == 1:
        return rules.Group("and", tuple(groups[0]))
    return rules.Group("or", tuple(g[0] if len(g) == 1 else rules.Group("and", tuple(g)) for g in groups))
