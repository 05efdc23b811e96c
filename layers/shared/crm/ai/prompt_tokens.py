"""A prompt as tokens: words and phrases with their meaning (`prompt_words`), the brand's own names (attribute keys
and values, tags, products, campaigns), numbers as people write them ("₹5K", "1,50,000", "1.5 lakh", "twenty
five"), ranges ("2 to 5", "3-5", "between 1 and 2 lakh"), calendar periods ("this month", "since 1 October") and
misspellings of everyday words corrected when only one word is meant."""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache
from typing import Any

from crm.ai.prompt_words import (
    COUNTABLE,
    CURRENCY_WORDS,
    DAYS_PER_UNIT,
    EVERYDAY_WORDS,
    MONTHS,
    MULTIPLIERS,
    NUMBER_WORDS,
    PHRASE_LENGTH,
    PHRASES,
    PUNCTUATION,
    STOPWORDS,
    TENS,
    TIMES_WORDS,
    WEAK_SUBJECTS,
    known_words,
)
from crm.errors import InvalidInput

TOKEN = re.compile(
    r"(?P<date>(?<![\w-])\d{4}-\d{2}-\d{2}(?![\w-]))"
    r"|(?P<ordinal>(?<![\w.,])\d{1,2}(?:st|nd|rd|th)(?![\w]))"
    r"|(?P<code>[a-z](?=[a-z0-9_-]*\d)[a-z0-9]*(?:[-_][a-z0-9]+)*)"
    # Grouped as in the US (1,234,567) or India (12,34,567); "1,00" or "5,0000" is no number as written here.
    r"|(?P<num>(?:(?<![\w\-–—])-)?(?<![\w.,])[₹$€£]?\s?(?:\d{1,3}(?:,\d{3})+|\d{1,2}(?:,\d{2})+,\d{3}|\d+)"
    r"(?:\.\d+)?\s?"
    r"(?:k|mn|m|bn|b|cr|l|lakhs?|lacs?|crores?|thousand|million|billion)?(?![a-z0-9]|[,.]\d))"
    r"|(?P<dash>[-–—](?=\s?[₹$€£]?\d))"
    r"|(?P<badnum>-?[₹$€£]?\d[\d,.]*)"
    r"|(?P<sym>>=|<=|!=|==|[<>=≥≤≠&,+])"
    r"|(?P<word>[a-z]+(?:'[a-z]+)?(?:[-_.][a-z]+)*)"
    r"|(?P<other>\S)",
    re.IGNORECASE,
)
CALENDAR_UNITS = ("week", "month", "quarter", "year")
# The misspelt words one prompt may have read as others; each is compared with every name the brand has.
MAX_CORRECTED = 5


@dataclass
class Token:
    kind: str  # a PHRASES kind, or num | unit | currency | code | value | key | flag | tag | product | campaign |
    # brand (a name with several senses) | calendar | range | list | unknown
    meaning: str = ""
    value: float = 0.0
    text: str = ""
    plural: bool = False
    scale: float = 1.0  # the multiplier a number was written with ("2 lakh": 1e5), for ranges ("1 to 2 lakh")
    high: float = 0.0  # a range's upper end
    # What a brand name stands for: "value" → {attribute key: spellings}, "tag" → the tag, "product" → its SKUs,
    # "campaign" → its ids, "key" → an attribute key, "flag" → a yes/no attribute named by a noun ("students").
    senses: dict[str, Any] = field(default_factory=dict)
    reads_as: str = ""  # the everyday word a misspelt word is read as
    items: list[Token] = field(default_factory=list)  # a list's tags, SKUs, products or known values
    joined: set[str] = field(default_factory=set)  # the joins between a list's items

    @property
    def candidates(self) -> dict[str, list[str]]:
        return self.senses.get("value", {})


@dataclass(frozen=True)
class BrandWords:
    """The registries' names by the words a prompt would use for them: only the names whose first word the prompt
    has (a registry may hold a hundred thousand values), and every word of every name."""

    phrases: dict[tuple[str, ...], dict[str, Any]]
    words: frozenset[str]  # every word of every name, never "corrected" into an everyday word
    known: Any

    @classmethod
    def of(cls, known: Any, prompt: str | None = None) -> BrandWords:
        """`known`: a KnownAttributes, or a BrandRegistry that also knows tags, products and campaigns."""
        said = None
        if prompt is not None:
            said = set(re.findall(r"[\w'.-]+", prompt.lower()))
            said |= {part for word in said for part in re.split(r"[-'.]", word) if part}  # "non-vip", "vips."
        phrases: dict[tuple[str, ...], dict[str, Any]] = {}
        for words, sense, meaning, _ in _names(known, said):
            senses = phrases.setdefault(words, {})
            if sense == "value":
                key, spelling = meaning
                senses.setdefault("value", {}).setdefault(key, []).append(spelling)
            elif sense in ("product", "campaign"):
                senses.setdefault(sense, []).append(meaning)
            else:
                senses.setdefault(sense, meaning)
        every = {w for values in known.values.values() for value in values for w in value.lower().split()}
        every |= {w for key in known.types for w in key.replace("_", " ").split()}
        every |= set(getattr(known, "tags", ()))
        named = [*getattr(known, "products", {}).values(), *(name for _, name in getattr(known, "campaigns", ()))]
        every |= {w for name in named for w in name_words(name)}
        return cls(phrases, frozenset(every), known)

    def display(self) -> dict[str, str]:
        """Every name's words → how the registry writes it, for suggestions."""
        return {" ".join(words): shown for words, _, _, shown in _names(self.known, None)}


def _names(known: Any, said: set[str] | None):
    """(words, sense, meaning, as shown) for each name in the registries; with `said`, only those whose first word
    is in it."""
    def named(words: tuple[str, ...]) -> bool:
        return bool(words) and (said is None or words[0] in said) and not (len(words) == 1 and _everyday(words[0]))

    for key, values in known.values.items():
        for value in values:
            first = value[:value.find(" ")] if " " in value else value
            if said is None or first.lower() in said:
                if named(words := _plain_words(value)):
                    yield words, "value", (key, value), value
    keys = list(known.types)
    last_words = Counter(key.rsplit("_", 1)[-1] for key in keys if "_" in key)
    for key in keys:
        for name in {key, key.replace("_", " "), f"attributes.{key}"}:
            if tuple(name.split()) not in PHRASES and named(tuple(name.split())):
                yield tuple(name.split()), "key", key, name
        last = key.rsplit("_", 1)[-1]
        if "_" in key and last_words[last] == 1 and last not in known.types and last not in known_words() \
                and named((last,)):
            yield (last,), "key", key, last  # "platinum tier" for loyalty_tier
        if known.types[key] == "boolean" and key.startswith("is_"):
            noun = key[3:].replace("_", " ")
            for form in (noun, f"{noun}s"):
                if named(tuple(form.split())):
                    yield tuple(form.split()), "flag", key, form  # "students" for is_student
    for tag in getattr(known, "tags", ()):
        for form in (tag, f"{tag}s"):
            if named((form,)):
                yield (form,), "tag", tag, tag
    for sku, name in getattr(known, "products", {}).items():
        if named(words := name_words(name)):
            yield words, "product", sku, name
    for campaign_id, name in getattr(known, "campaigns", ()):
        if named(words := name_words(name)):
            yield words, "campaign", campaign_id, name


def _plain_words(value: str) -> tuple[str, ...]:
    """A value's words when it is written in plain words (how a prompt can name it), else ()."""
    words = tuple(value.lower().split())
    return words if words and all(re.fullmatch(r"[a-z]+(?:[-'][a-z]+)*", w) for w in words) else ()


def name_words(name: str) -> tuple[str, ...]:
    """A product's or campaign's name as the tokens a prompt naming it has ("Black Friday 2026"); () when it has no
    letters (a bare number is no name a prompt can be read by)."""
    words = tuple(m.group(0).lower() for m in TOKEN.finditer(name)
                  if m.lastgroup in ("word", "code", "num", "date", "ordinal"))
    return words if any(any(ch.isalpha() for ch in w) for w in words) else ()


def _everyday(word: str) -> bool:
    """A word whose everyday meaning a brand's name does not take over ("a", "total", "usd", "store")."""
    return any(word in table for table in EVERYDAY_WORDS)


def vocabulary(brand: BrandWords) -> dict[str, str]:
    """Every word the parser knows → how to show it, for suggesting the one a misspelt word was meant to be."""
    words = {w: w for phrase in PHRASES for w in phrase if w.isalpha()}
    words |= {w: w for w in (*NUMBER_WORDS, *TENS, *TIMES_WORDS, *DAYS_PER_UNIT, *MULTIPLIERS)}
    return words | brand.display()


def refusal(message: str, details: list[dict] | None = None) -> InvalidInput:
    return InvalidInput(message, details or [{"loc": ["body", "prompt"], "msg": message}], code="prompt_not_understood")


def tokens(prompt: str, brand: BrandWords, today: date) -> tuple[list[Token], dict[str, str]]:
    """The prompt's tokens, and the misspellings read as everyday words (misspelt → meant)."""
    raw: list[Token] = []
    for match in TOKEN.finditer(prompt.replace("’", "'").replace("‘", "'")):
        text, group = match.group(0), match.lastgroup
        if group == "num" and re.search(r"(?<![\d.])\d{1,3}\.\d{3}(?![\d.])", text):
            raw.append(Token("unknown", text=text.strip()))  # "1.000": a thousand, or one? Not said here
        elif group == "num":
            value, scale = amount(text)
            raw.append(Token("num", value=value, scale=scale, text=text.strip()))
        elif group in ("date", "ordinal", "dash"):
            raw.append(Token(group, text=text.strip(), value=float(re.sub(r"\D", "", text) or 0)
                             if group == "ordinal" else 0.0))
        elif group == "badnum":
            raw.append(Token("unknown", text=text))  # "5,0000", "5.000,00": not a number as written here
        elif group in ("code", "sym", "word"):
            raw.append(Token("word" if group != "code" else "code", text=text))
        elif text not in PUNCTUATION:
            raw.append(Token("unknown", text=text))
    corrected = _corrected(raw, brand)
    words = _numbers(_phrases(raw, brand))
    return _ranges(_calendar(words, today)), corrected


def amount(text: str) -> tuple[float, float]:
    """A number as written, and the multiplier it was written with."""
    match = re.fullmatch(r"(-?)[₹$€£]?\s?(\d+(?:,\d{2,3})*(?:\.\d+)?)\s?([a-z]*)", text.strip().lower())
    assert match is not None
    number = float(match.group(2).replace(",", "")) * (-1 if match.group(1) else 1)
    scale = MULTIPLIERS[match.group(3)] if match.group(3) else 1.0
    return number * scale, scale


def _corrected(raw: list[Token], brand: BrandWords) -> dict[str, str]:
    """Reads a word nobody uses as the one everyday word one letter away from it ("visted", "custmers"), unless it
    is as close to one of the brand's names ("Mumbia" stays unknown, with a suggestion)."""
    everyday = _correctable()
    corrected: dict[str, str] = {}
    read: dict[str, str | None] = {}
    for token in raw:
        word = token.text.lower()
        if (token.kind != "word" or len(word) < 4 or not word.isalpha() or word in known_words()
                or word in brand.words):
            continue
        if word not in read:
            if len(read) == MAX_CORRECTED:
                break  # a prompt of more misspellings than this is refused naming them
            near = [w for w in everyday if _slip_of(word, w)]
            read[word] = near[0] if len(near) == 1 and not _near_a_name(word, brand) else None
        if read[word]:
            corrected[token.text] = token.reads_as = read[word]
    return corrected


@cache
def _correctable() -> frozenset[str]:
    """The words a misspelling may be read as: those that mean something alone, and the longer words of phrases
    ("least" of "at least"); not a short word that only lives in a phrase ("live" of "live in", one letter from
    "like")."""
    alone = {phrase[0] for phrase in PHRASES if len(phrase) == 1}
    alone |= {w for table in EVERYDAY_WORDS for w in table}
    in_phrases = {w for phrase in PHRASES if len(phrase) > 1 for w in phrase if len(w) >= 5}
    return frozenset(w for w in alone | in_phrases if len(w) >= 3 and w.isalpha())


def _near_a_name(word: str, brand: BrandWords) -> bool:
    """Within two edits of a word of the brand's names. Each edit changes the set of letters by at most two, so
    the letter sets filter the names first, cheaply (a registry holds tens of thousands of words)."""
    letters = set(word)
    return any(abs(len(w) - len(word)) <= 2 and len(letters ^ set(w)) <= 4 and _edits_apart(word, w) <= 2
               for w in brand.words)


def _slip_of(word: str, meant: str) -> bool:
    """A slip of the keyboard: a letter left out ("visted"), two neighbours swapped ("recieved"), a letter typed
    twice ("oppened") or, in a longer word, one too many ("speant"). Not a letter typed for another: that turns
    everyday words into others ("older" is no misspelt "order")."""
    if len(word) == len(meant) - 1:
        return any(meant[:i] + meant[i + 1:] == word for i in range(len(meant)))
    if len(word) == len(meant) + 1:
        return any(word[:i] + word[i + 1:] == meant and (len(word) >= 6 or word[i] in word[max(0, i - 1):i] +
                                                           word[i + 1:i + 2]) for i in range(len(word)))
    if len(word) == len(meant):
        differ = [i for i in range(len(word)) if word[i] != meant[i]]
        return len(differ) == 2 and differ[1] == differ[0] + 1 and word[differ[0]] == meant[differ[1]] \
            and word[differ[1]] == meant[differ[0]]
    return False


def _edits_apart(a: str, b: str) -> int:
    """Damerau-Levenshtein distance (a swap of two neighbours is one edit)."""
    if abs(len(a) - len(b)) > 2:
        return 3
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        row = [i]
        for j, y in enumerate(b, 1):
            cost = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (x != y))
            if i > 1 and j > 1 and x == b[j - 2] and a[i - 2] == y:
                cost = min(cost, previous2[j - 2] + 1)
            row.append(cost)
        previous2, previous = previous, row
    return previous[-1]


def _phrases(raw: list[Token], brand: BrandWords) -> list[Token]:
    out: list[Token] = []
    i = 0
    longest = max(PHRASE_LENGTH, *(len(p) for p in brand.phrases)) if brand.phrases else PHRASE_LENGTH
    while i < len(raw):
        if raw[i].kind not in ("word", "code", "num"):
            out.append(raw[i])
            i += 1
            continue
        for length in range(longest, 0, -1):
            run = raw[i:i + length]
            if len(run) != length or any(t.kind not in ("word", "code", "num") for t in run):
                continue
            words = tuple((t.reads_as or t.text).lower() for t in run)
            built_in = PHRASES.get(words) if all(t.kind == "word" for t in run) else None
            own = brand.phrases.get(words)
            text = " ".join(t.text for t in run)
            if own and (built_in is None or built_in[0] in ("descriptor", "stop")):
                out.append(_brand_token(own, text))
            elif built_in:
                out.append(Token(built_in[0], built_in[1], text=text))
            elif length == 1:
                out.extend(_word(raw[i], raw[i + 1] if i + 1 < len(raw) else None, brand))
            else:
                continue
            i += length
            break
    return out


def _brand_token(senses: dict[str, Any], text: str) -> Token:
    copied = {sense: ({k: list(v) for k, v in meaning.items()} if sense == "value" else
                      list(meaning) if isinstance(meaning, list) else meaning) for sense, meaning in senses.items()}
    kind = next(iter(copied)) if len(copied) == 1 else "brand"
    meaning = copied[kind] if kind in ("key", "flag", "tag") else ""
    return Token(kind, meaning, text=text, senses=copied)


def _word(token: Token, following: Token | None, brand: BrandWords) -> list[Token]:
    word = (token.reads_as or token.text).lower()
    after = following.text.lower() if following is not None else ""
    if token.kind == "num":
        return [token]
    if token.kind == "code":
        return [Token("code", text=token.text)]
    if word.startswith("non-") and (word[4:],) in brand.phrases and "tag" in brand.phrases[(word[4:],)]:
        return [Token("neg", "not", text="non-"), _brand_token({"tag": brand.phrases[(word[4:],)]["tag"]},
                                                               token.text[4:])]  # "non-vip"
    if word in ("a", "an") and (after in DAYS_PER_UNIT or after in COUNTABLE):
        return [Token("num", value=1, text=token.text)]
    for table in (NUMBER_WORDS, TENS):
        if word in table:
            return [Token("num", value=table[word], text=token.text)]
    if word in TIMES_WORDS:
        return [Token("num", "times", value=TIMES_WORDS[word], text=token.text)]
    if word in MULTIPLIERS:
        return [Token("multiplier", value=MULTIPLIERS[word], text=token.text)]
    if word in DAYS_PER_UNIT:
        return [Token("unit", value=DAYS_PER_UNIT[word], text=token.text, plural=word.endswith("s"),
                      meaning=word.rstrip("s"))]
    if word in MONTHS:
        return [Token("month", value=MONTHS[word], text=token.text)]
    if word in CURRENCY_WORDS:
        return [Token("currency", text=token.text)]
    if word in WEAK_SUBJECTS:
        return [Token("weak", WEAK_SUBJECTS[word], text=token.text)]
    if word in STOPWORDS:
        return [Token("stop", text=token.text)]
    return [Token("unknown", text=token.text)]


def _numbers(tokens: list[Token]) -> list[Token]:
    """Joins number words ("twenty five", "a hundred thousand", "2 dozen") into one number; "in 30 days" is a
    window like "in the last 30 days"."""
    out: list[Token] = []
    for i, token in enumerate(tokens):
        previous = out[-1] if out else None
        if (token.kind == "join" and token.meaning == "and" and previous is not None and previous.kind == "num"
                and previous.text.lower().endswith(("hundred", "thousand")) and i + 1 < len(tokens)
                and tokens[i + 1].kind == "num" and tokens[i + 1].value < 100):
            continue  # "one hundred and twenty"
        if (token.kind == "num" and previous is not None and previous.kind == "num"
                and previous.text.lower().endswith(("hundred", "thousand")) and token.value < 100):
            previous.value += token.value
            previous.text += f" {token.text}"
            continue
        if token.kind == "multiplier":
            if previous is not None and previous.kind == "num":
                previous.value *= token.value
                previous.scale *= token.value
                previous.text += f" {token.text}"
                continue
            token = Token("unknown", text=token.text) if token.value != 12 else Token("num", value=12, text=token.text)
        elif (token.kind == "num" and previous is not None and previous.kind == "num" and previous.value in
              TENS.values() and 0 < token.value < 10 and not previous.meaning and not token.meaning
              and previous.text.isalpha() and token.text.isalpha()):
            previous.value += token.value
            previous.text += f" {token.text}"
            continue
        elif (token.kind == "stop" and token.text.lower() in ("in", "during") and i + 2 < len(tokens)
              and tokens[i + 1].kind == "num" and tokens[i + 2].kind == "unit"):
            token = Token("window", "<", text=token.text)
        out.append(token)
    return out


def _calendar(words: list[Token], today: date) -> list[Token]:
    """Periods become windows of days up to today, today included, as rules count them. "this month" on 18
    November is 18 days and "since 1 October" 49: exact. "in the last 30 days" and "past week" are the rolling
    windows "in the last …" says. A period that ended before today ("last month", "in October") is no window up to
    today, and "since October" may count from its first day or its last: both are refused, saying what to write."""
    out: list[Token] = []
    i = 0
    while i < len(words):
        token, following = words[i], words[i + 1] if i + 1 < len(words) else None
        kind = token.kind
        if kind == "today":
            out.append(Token("calendar", "period", value=1, text=token.text))
        elif kind == "this" and _calendar_unit(following):
            start = _period_start(today, following.meaning, previous=False)
            out.append(Token("calendar", "period", value=_days_since(start, today), text=f"{token.text} "
                             f"{following.text}"))
            i += 2
            continue
        elif kind == "last" and _calendar_unit(following):
            raise _ended(f"{token.text} {following.text}", following.meaning, today)
        elif kind == "window" and token.text.lower() == "in last" and _calendar_unit(following):
            raise _rolling_or_calendar(f"{token.text} {following.text}", following.meaning, today)
        elif kind in ("last", "past") and following is not None and following.kind in ("num", "unit"):
            out.append(Token("window", "<", text=token.text))  # "last 30 days", "past week"
        elif kind == "month" and (token.text.lower() != "may" or (out and out[-1].text.lower() in ("in", "during"))):
            raise _named_month(token, today)  # "may" is a month only after "in" ("customers who may …")
        elif kind == "since":
            start, used = _since(words[i + 1:], today)
            if start is None and used:
                pass  # "since 3 months": for 3 months
            elif start is None:
                said = " ".join(t.text for t in words[i:i + 3])
                raise refusal(f"{said!r}: 'since' needs a date, such as 'since 1 October' or 'since the start of "
                              "last month'")
            else:
                text = " ".join(t.text for t in words[i:i + 1 + used])
                out.append(Token("calendar", "since", value=_days_since(start, today), text=text))
                i += 1 + used
                continue
        else:
            out.append(token)
        i += 1
    return out


def _calendar_unit(token: Token | None) -> bool:
    return token is not None and token.kind == "unit" and not token.plural and token.meaning in CALENDAR_UNITS


def _period_start(today: date, unit: str, previous: bool) -> date:
    if unit == "week":
        start = today - timedelta(days=today.weekday())
        return start - timedelta(days=7) if previous else start
    if unit == "year":
        return date(today.year - previous, 1, 1)
    months = 3 if unit == "quarter" else 1
    first = (today.month - 1) // months * months + 1
    index = today.year * 12 + first - 1 - (months if previous else 0)
    return date(index // 12, index % 12 + 1, 1)


def _days_since(start: date, today: date) -> int:
    if start > today:
        raise refusal(f"{start.isoformat()} is in the future")
    return (today - start).days + 1


def _ended(said: str, unit: str, today: date) -> InvalidInput:
    """"last month": the period before this one, which no window of the last N days up to today is."""
    start, end = _period_start(today, unit, previous=True), _period_start(today, unit, previous=False)
    return refusal(f"{said!r} ({_span(start, end - timedelta(days=1), unit, today)}) ended before today, and rules "
                   f"count days up to today: say 'in the last {DAYS_PER_UNIT[unit]} days', or 'since "
                   f"{_day(start, today)}' to count the days since then too")


def _rolling_or_calendar(said: str, unit: str, today: date) -> InvalidInput:
    """"in last month": the last 30 days, or the month before this one?"""
    start, end = _period_start(today, unit, previous=True), _period_start(today, unit, previous=False)
    return refusal(f"{said!r} may be the last {DAYS_PER_UNIT[unit]} days or "
                   f"{_span(start, end - timedelta(days=1), unit, today)}, which ended before today: say 'in the last "
                   f"{DAYS_PER_UNIT[unit]} days', or 'since {_day(start, today)}' to count the days since then too")


def _named_month(token: Token, today: date) -> InvalidInput:
    """A month named outside a date ("ordered in October"): rules count days up to today, not a month."""
    month = int(token.value)
    if month == today.month:
        return refusal(f"{token.text!r}: say 'this month' (since 1 {today:%B}, today included)")
    start = date(today.year - (month > today.month), month, 1)
    return refusal(f"{token.text!r} ended before today, and rules count days up to today: say 'in the last 30 "
                   f"days', or 'since {_day(start, today)}' to count the days since then too")


def _ambiguous_since(said: str, start: date, after: date, today: date) -> InvalidInput:
    """"since October": from 1 October, or after October (no purchase since it: the last one was in October)?"""
    return refusal(f"{said!r} may count from {_day(start, today)} or from {_day(after, today)}: say 'since "
                   f"{_day(start, today)}' or 'since {_day(after, today)}'")


def _day(day: date, today: date) -> str:
    return f"{day.day} {day:%B}" + (f" {day.year}" if day.year != today.year else "")


def _span(start: date, end: date, unit: str, today: date) -> str:
    """A period as people name it: "9 to 15 November", "October", "July to September", "2025"."""
    year = f" {start.year}" if start.year != today.year else ""
    if unit == "year":
        return str(start.year)
    if unit == "month":
        return f"{start:%B}{year}"
    if unit == "quarter":
        return f"{start:%B} to {end:%B}{year}"
    return f"{_day(start, today)} to {_day(end, today)}" if start.month != end.month else \
        f"{start.day} to {_day(end, today)}"


def _since(words: list[Token], today: date) -> tuple[date | None, int]:
    """The date after "since", and how many tokens name it; (None, 0) when none does, (None, n) when it is a
    duration ("since 3 months", Indian English for "for 3 months"). A period that ended before today ("since
    October", "since last month") is refused: from its first day, or from the day after its last?"""
    kinds = [t.kind for t in words[:4]]
    if kinds[:2] == ["num", "unit"]:
        return None, 2
    if kinds[:2] in (["last", "unit"], ["this", "unit"]) and _calendar_unit(words[1]):
        unit = words[1].meaning
        if kinds[0] == "last":
            said = f"since {words[0].text} {words[1].text}"
            raise _ambiguous_since(said, _period_start(today, unit, previous=True),
                                   _period_start(today, unit, previous=False), today)
        return _period_start(today, unit, previous=False), 2
    if kinds[:1] == ["start"]:
        rest = words[1:]
        skip = 1 if rest and rest[0].kind in ("stop", "this", "last") and rest[0].text.lower() in (
            "the", "this", "last") else 0
        if len(rest) > skip and _calendar_unit(rest[skip]):
            previous = skip == 1 and rest[0].kind == "last"  # "since the start of last month"
            return _period_start(today, rest[skip].meaning, previous=previous), 2 + skip
        return None, 0
    if kinds[:1] == ["date"]:
        try:
            return date.fromisoformat(words[0].text), 1
        except ValueError:
            raise refusal(f"{words[0].text!r} is not a date") from None
    day, month, used = _day_and_month(words)
    if month is None:
        return None, 0
    whole_month = used == 1  # "October", no day
    year = None
    said_year = words[used] if len(words) > used else None
    if said_year is not None and said_year.kind == "num" and said_year.text.isdigit() and said_year.value >= 1900:
        year, used = int(said_year.value), used + 1
    try:
        start = date(year or today.year, month, day)
        if year is None and start > today:
            start = date(today.year - 1, month, day)
    except ValueError:
        raise refusal(f"{' '.join(t.text for t in words[:used])!r} is not a date") from None
    if whole_month and (start.year, start.month) < (today.year, today.month):
        after = date(start.year + start.month // 12, start.month % 12 + 1, 1)
        raise _ambiguous_since(f"since {' '.join(t.text for t in words[:used])}", start, after, today)
    return start, used


def _day_and_month(words: list[Token]) -> tuple[int, int | None, int]:
    """"October", "1 Oct", "1st October", "Oct 1", "October 1st" → (day, month, tokens used)."""
    def day_at(index: int) -> int | None:
        if index < len(words) and words[index].kind in ("num", "ordinal") and words[index].text[:1].isdigit():
            value = words[index].value
            return int(value) if value == int(value) and 1 <= value <= 31 else None
        return None

    if words and words[0].kind == "month":
        day = day_at(1)
        return (day, int(words[0].value), 2) if day else (1, int(words[0].value), 1)
    day = day_at(0)
    if day and len(words) > 1 and words[1].kind == "month":
        return day, int(words[1].value), 2
    return 1, None, 0


def _ranges(words: list[Token]) -> list[Token]:
    """"between 2 and 5", "2 to 5", "3-5" are one range token; "1 to 2 lakh" is 1 lakh to 2 lakh."""
    out: list[Token] = []
    i = 0
    while i < len(words):
        token = words[i]
        if token.kind == "between":
            found = _range_at(words, i + 1, ("join", "to", "dash"))
            if found is None:
                raise refusal(f"{token.text!r} needs two amounts, such as 'between 1k and 5k'")
            rng, i = found
            rng.text = f"{token.text} {rng.text}"
            out.append(rng)
            continue
        if token.kind == "num":
            found = _range_at(words, i, ("to", "dash"))
            if found is not None:
                rng, i = found
                out.append(rng)
                continue
        if token.kind in ("to", "dash"):
            neighbours = [w for w in (out[-1] if out else None, words[i + 1] if i + 1 < len(words) else None) if w]
            if token.kind == "dash" or any(w.kind in ("num", "range") for w in neighbours):
                raise refusal(f"{token.text!r} is unclear here; write a range as 'from 2 to 5' or 'between 2 and 5'")
            token = Token("stop", text=token.text)  # "resend to non-openers"
        out.append(token)
        i += 1
    return out


def _range_at(words: list[Token], start: int, links: tuple[str, ...]) -> tuple[Token, int] | None:
    """The range starting at words[start]: low [unit] link high; None when there is none."""
    i = start
    low = words[i] if i < len(words) and words[i].kind == "num" else None
    if low is None:
        return None
    i += 1
    unit = words[i] if i < len(words) and words[i].kind == "unit" else None
    i += unit is not None
    link = words[i] if i < len(words) else None
    if link is None or link.kind not in links or (link.kind == "join" and link.meaning != "and"):
        return None
    high = words[i + 1] if i + 1 < len(words) and words[i + 1].kind == "num" else None
    if high is None:
        return None
    end = i + 2
    if unit is not None:
        # "30 days to 60 days": the same unit must follow the high end, which then carries it.
        if end >= len(words) or words[end].kind != "unit" or words[end].value != unit.value:
            raise refusal(f"{' '.join(t.text for t in words[start:end + 1])!r} mixes two units")
    low_value = low.value
    if low.scale == 1 and high.scale > 1 and low.value < high.value / high.scale:
        low_value = low.value * high.scale  # "1 to 2 lakh", "between 2 and 5k"
    text = " ".join(t.text for t in words[start:end])
    return Token("range", value=low_value, high=high.value, text=text), end
