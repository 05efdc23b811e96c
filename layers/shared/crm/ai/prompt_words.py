"""The words of the offline rules parser and the tokens they become: what each everyday word or phrase means
(a field, a comparison, a number, a duration, a negation, a join), which words only describe customers, and the
brand's own words from the attribute registry (its keys and known values)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from crm.services.attributes import KnownAttributes

NUMBER_WORDS = {"zero": 0, "nothing": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
                "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
                "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19}
TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
        "ninety": 90}
TIMES_WORDS = {"once": 1, "twice": 2, "thrice": 3}
MULTIPLIERS = {"k": 1e3, "thousand": 1e3, "m": 1e6, "mn": 1e6, "million": 1e6, "lakh": 1e5, "lakhs": 1e5,
               "lac": 1e5, "lacs": 1e5, "crore": 1e7, "crores": 1e7, "cr": 1e7, "b": 1e9, "bn": 1e9, "billion": 1e9,
               "hundred": 100, "dozen": 12}
# "a"/"an" is a number only before these ("a week", "a dozen"); elsewhere it is an article.
COUNTABLE = {"hundred", "thousand", "million", "dozen", "lakh", "crore", "time"}
CURRENCY_WORDS = {"rs", "inr", "usd", "eur", "gbp", "rupees", "rupee", "dollars", "dollar", "euros", "euro",
                  "pounds", "bucks"}
DAYS_PER_UNIT = {"day": 1, "days": 1, "week": 7, "weeks": 7, "month": 30, "months": 30, "year": 365, "years": 365,
                 "yr": 365, "yrs": 365}

# Subjects: what a condition is about. "purchase" words become spend, visits, recency or SKUs by what follows.
MONEY, COUNT, PURCHASE, ORDER, ACTIVE, INACTIVE, LAST_ACTIVE, SIGNUP, TAGS, SKUS, SUBSCRIBED, UNSUBSCRIBED = (
    "money", "count", "purchase", "order", "active", "inactive", "last_active", "signup", "tags", "skus",
    "subscribed", "unsubscribed")
# Nouns that name a subject without being a condition ("big spenders in Pune" says nothing about spend).
WEAK_SUBJECTS = {"spenders": MONEY, "spender": MONEY, "visitors": COUNT, "visitor": COUNT}

# Longest phrase wins; each maps to (kind, meaning).
PHRASES: dict[tuple[str, ...], tuple[str, str]] = {}


def _add(kind: str, meaning: str, *phrases: str) -> None:
    for phrase in phrases:
        PHRASES[tuple(phrase.split())] = (kind, meaning)


_add("subject", MONEY, "spent", "spend", "spends", "spending", "order value", "orders worth", "lifetime value",
     "ltv", "revenue", "paid")
_add("subject", PURCHASE, "purchases", "purchase", "purchased", "bought", "buy", "buys", "shopped")
_add("subject", ORDER, "orders", "order", "ordered")
_add("subject", COUNT, "visits", "visit", "visited", "came", "come", "placed")
_add("subject", INACTIVE, "inactive", "dormant", "lapsed", "inactive_days")
_add("subject", LAST_ACTIVE, "last active", "last seen", "last visit", "last visited", "last ordered",
     "last purchase", "last purchased", "last order")
_add("subject", ACTIVE, "active", "seen")
_add("subject", SIGNUP, "joined", "join", "signed up", "sign up", "signup", "signups", "registered", "new",
     "signup_days")
_add("subject", TAGS, "tagged", "tag", "tags", "tagged as", "tagged with")
_add("subject", SKUS, "sku", "skus", "product", "item")
_add("subject", SUBSCRIBED, "subscribed", "opted in", "can email", "can be emailed", "reachable by email",
     "subscribers")
_add("subject", UNSUBSCRIBED, "unsubscribed", "opted out")
_add("op", ">", "more than", "over", "above", "greater than", "exceeding", "exceeds", "exceed", "beyond",
     "longer than", "higher than", ">", "in excess of", "upwards of")
_add("op", ">=", "at least", "minimum", "min", ">=", "≥", "no less than", "not less than", "no fewer than")
_add("op", "<", "less than", "under", "below", "fewer than", "lower than", "shorter than", "<")
_add("op", "<=", "at most", "no more than", "not more than", "up to", "maximum", "max", "<=", "≤")
_add("op", "==", "exactly", "equal to", "equals", "=", "==")
_add("op", "!=", "not exactly", "other than", "not equal to", "!=", "≠")
_add("window", "<", "within", "within the last", "within the past", "in the last", "in the past", "in last",
     "in past", "during the last", "during the past", "over the last", "over the past", "this")
_add("today", "today", "today")
_add("postfix", ">=", "or more", "or above", "or over", "and above", "and up", "or higher", "+", "plus")
_add("postfix", "<=", "or less", "or fewer", "or below", "or under", "and below", "or lower")
_add("neg", "not", "not", "no", "never", "haven't", "hasn't", "have not", "has not", "didn't", "did not", "don't",
     "doesn't", "do not", "does not", "without", "outside", "weren't", "wasn't", "aren't", "isn't", "is not")
_add("times", "times", "times", "time")
_add("bool", "true", "true")
_add("bool", "false", "false")
_add("join", "and", "and", "&", ",", "but", "as well as")
_add("join", "or", "or", "either")
_add("between", "between", "between")
_add("descriptor", "", "big", "high", "heavy", "top", "best", "loyal", "valuable", "high value", "high-value",
     "churned", "churning", "at-risk", "at risk", "regular", "frequent", "engaged", "occasional", "low", "small",
     "vip", "vips", "important", "key", "good", "great", "repeat", "potential")
_add("stop", "", "came from", "come from", "coming from", "live in", "living in", "based in", "located in")

STOPWORDS = {
    "users", "user", "customers", "customer", "people", "shoppers", "shopper", "buyers", "buyer", "clients", "members",
    "folks", "everyone", "anyone", "those", "who", "whose", "that", "which", "have", "has", "had", "having", "been",
    "be", "are", "is", "was", "were", "with", "for", "the", "of", "in", "on", "to", "by", "their", "they",
    "them", "total", "than", "since", "ago", "show", "me", "find", "list", "get", "all", "segment",
    "audience", "target", "want", "give", "select", "i", "please", "any", "amount", "worth", "value", "money",
    "lifetime", "overall", "last", "past", "period", "so", "far", "store", "shop", "us", "our", "from", "a", "an",
    "we", "can", "anything", "something", "someone", "somebody", "basically", "just", "only", "who've", "did",
    "do", "does", "as", "at", "up", "ever", "yet", "still",
}
EVERYDAY_WORDS = (NUMBER_WORDS, TENS, TIMES_WORDS, MULTIPLIERS, CURRENCY_WORDS, DAYS_PER_UNIT, WEAK_SUBJECTS,
                  STOPWORDS)
PUNCTUATION = set(".?!:;()'\"“”—–-/[]{}*")
TOKEN = re.compile(
    r"(?P<num>(?<![\w-])-?[₹$€£]?\s?\d+(?:,\d{2,3})*(?:\.\d+)?\s?"
    r"(?:k|mn|m|bn|b|cr|lakhs?|lacs?|crores?|thousand|million|billion)?(?![a-z0-9]|[,.]\d))"
    r"|(?P<badnum>-?[₹$€£]?\d[\d,.]*)"
    r"|(?P<code>[a-z](?=[a-z0-9_-]*\d)[a-z0-9]*(?:[-_][a-z0-9]+)*)"
    r"|(?P<sym>>=|<=|!=|==|[<>=≥≤≠&,+])"
    r"|(?P<word>[a-z]+(?:'[a-z]+)?(?:[-_.][a-z]+)*)"
    r"|(?P<other>\S)",
    re.IGNORECASE,
)


@dataclass
class Token:
    kind: str  # a PHRASES kind, or num | unit | currency | code | value | key | unknown
    meaning: str = ""
    value: float = 0.0
    text: str = ""
    plural: bool = False
    # A known value: attribute key → the value as stored, in each spelling ("Mumbai", "mumbai").
    candidates: dict[str, list[str]] = field(default_factory=dict)
    items: list[Token] = field(default_factory=list)  # a list's tags, SKUs or known values
    joined: set[str] = field(default_factory=set)  # the joins between a list's items


@dataclass(frozen=True)
class BrandWords:
    """The registry's words: attribute keys by name and string values by what they say."""

    phrases: dict[tuple[str, ...], Token]
    display: dict[str, str]  # a lower-cased word → how the registry writes it (for suggestions)

    @classmethod
    def of(cls, known: KnownAttributes) -> BrandWords:
        phrases: dict[tuple[str, ...], Token] = {}
        display: dict[str, str] = {}
        for key, values in known.values.items():
            for value in values:
                words = _plain_words(value)
                if words:
                    spellings = phrases.setdefault(words, Token("value", text=value)).candidates.setdefault(key, [])
                    spellings.append(value)
                    display.setdefault(" ".join(words), value)
        for key in known.types:
            for name in {key, key.replace("_", " "), f"attributes.{key}"}:
                words = tuple(name.split())
                if words not in PHRASES:
                    phrases[words] = Token("key", key, text=name)
                    display[name] = name
        return cls(phrases, display)


def _plain_words(value: str) -> tuple[str, ...]:
    """A value's words when it is written in plain words (how a prompt can name it), else ()."""
    words = tuple(value.lower().split())
    return words if words and all(re.fullmatch(r"[a-z]+(?:[-'][a-z]+)*", w) for w in words) else ()


PHRASE_LENGTH = max(len(p) for p in PHRASES)


def vocabulary(brand: BrandWords) -> dict[str, str]:
    """Every word the parser knows → how to show it, for suggesting the one a misspelt word was meant to be."""
    words = {w: w for phrase in PHRASES for w in phrase if w.isalpha()}
    words |= {w: w for w in (*NUMBER_WORDS, *TENS, *TIMES_WORDS, *DAYS_PER_UNIT, *MULTIPLIERS)}
    return words | brand.display


def tokens(prompt: str, brand: BrandWords) -> list[Token]:
    raw: list[Token] = []
    for match in TOKEN.finditer(prompt.replace("’", "'").replace("‘", "'")):
        text = match.group(0)
        if match.group("num"):
            raw.append(Token("num", value=amount(text), text=text.strip()))
        elif match.group("badnum"):
            raw.append(Token("unknown", text=text))  # "5,0000", "5.000,00": not a number as written here
        elif match.group("code"):
            raw.append(Token("code", text=text))
        elif match.group("sym") or match.group("word"):
            raw.append(Token("word", text=text))
        elif text not in PUNCTUATION:
            raw.append(Token("unknown", text=text))
    return _numbers(_phrases(raw, brand))


def amount(text: str) -> float:
    match = re.fullmatch(r"(-?)[₹$€£]?\s?(\d+(?:,\d{2,3})*(?:\.\d+)?)\s?([a-z]*)", text.strip().lower())
    assert match is not None
    number = float(match.group(2).replace(",", "")) * (-1 if match.group(1) else 1)
    return number * MULTIPLIERS[match.group(3)] if match.group(3) else number


def _phrases(raw: list[Token], brand: BrandWords) -> list[Token]:
    out: list[Token] = []
    i = 0
    longest = max(PHRASE_LENGTH, *(len(p) for p in brand.phrases)) if brand.phrases else PHRASE_LENGTH
    while i < len(raw):
        if raw[i].kind != "word":
            out.append(raw[i])
            i += 1
            continue
        for length in range(longest, 0, -1):
            words = tuple(t.text.lower() for t in raw[i:i + length] if t.kind == "word")
            if len(words) != length:
                continue
            built_in, own = PHRASES.get(words), brand.phrases.get(words)
            if own and (built_in is None or built_in[0] in ("descriptor", "stop")) and not _everyday(words):
                out.append(Token(own.kind, own.meaning, text=" ".join(t.text for t in raw[i:i + length]),
                                 candidates={key: list(values) for key, values in own.candidates.items()}))
            elif built_in:
                out.append(Token(built_in[0], built_in[1], text=" ".join(t.text for t in raw[i:i + length])))
            elif length == 1:
                out.append(_word(raw[i], raw[i + 1] if i + 1 < len(raw) else None))
            else:
                continue
            i += length
            break
    return out


def _everyday(words: tuple[str, ...]) -> bool:
    """A word whose everyday meaning a brand's value or key does not take over ("a", "total", "usd", "store")."""
    return len(words) == 1 and any(words[0] in table for table in EVERYDAY_WORDS)


def _word(token: Token, following: Token | None) -> Token:
    word = token.text.lower()
    after = following.text.lower() if following is not None else ""
    if word in ("a", "an") and (after in DAYS_PER_UNIT or after in COUNTABLE):
        return Token("num", value=1, text=token.text)
    for table in (NUMBER_WORDS, TENS):
        if word in table:
            return Token("num", value=table[word], text=token.text)
    if word in TIMES_WORDS:
        return Token("num", "times", value=TIMES_WORDS[word], text=token.text)
    if word in MULTIPLIERS:
        return Token("multiplier", value=MULTIPLIERS[word], text=token.text)
    if word in DAYS_PER_UNIT:
        return Token("unit", value=DAYS_PER_UNIT[word], text=token.text, plural=word.endswith("s"))
    if word in CURRENCY_WORDS:
        return Token("currency", text=token.text)
    if word in WEAK_SUBJECTS:
        return Token("weak", WEAK_SUBJECTS[word], text=token.text)
    if word in STOPWORDS:
        return Token("stop", text=token.text)
    return Token("unknown", text=token.text)


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
                previous.text += f" {token.text}"
                continue
            token = Token("unknown", text=token.text) if token.value != 12 else Token("num", value=12, text=token.text)
        elif (token.kind == "num" and previous is not None and previous.kind == "num" and previous.value in
              TENS.values() and 0 < token.value < 10 and not previous.meaning and not token.meaning):
            previous.value += token.value
            previous.text += f" {token.text}"
            continue
        elif (token.kind == "stop" and token.text.lower() == "in" and i + 2 < len(tokens)
              and tokens[i + 1].kind == "num" and tokens[i + 2].kind == "unit"):
            token = Token("window", "<", text=token.text)
        out.append(token)
    return out
