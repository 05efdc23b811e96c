"""The words of the offline rules parser: what each everyday word or phrase means (a subject, a comparison, a
number, a duration, a calendar period, a negation, a join), which words only describe customers and what must be
said for them to count, and which words are filler. The brand's own words (attribute keys and values, tags,
products, campaigns) come from its registries (`crm.ai.prompt_tokens.BrandWords`)."""
from __future__ import annotations

from functools import cache

NUMBER_WORDS = {"zero": 0, "nothing": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
                "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
                "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19}
TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
        "ninety": 90}
TIMES_WORDS = {"once": 1, "twice": 2, "thrice": 3}
MULTIPLIERS = {"k": 1e3, "thousand": 1e3, "m": 1e6, "mn": 1e6, "million": 1e6, "lakh": 1e5, "lakhs": 1e5,
               "lac": 1e5, "lacs": 1e5, "l": 1e5, "crore": 1e7, "crores": 1e7, "cr": 1e7, "b": 1e9, "bn": 1e9,
               "billion": 1e9, "hundred": 100, "dozen": 12}
# "a"/"an" is a number only before these ("a week", "a dozen"); elsewhere it is an article.
COUNTABLE = {"hundred", "thousand", "million", "dozen", "lakh", "crore", "time"}
CURRENCY_WORDS = {"rs", "inr", "usd", "eur", "gbp", "rupees", "rupee", "dollars", "dollar", "euros", "euro",
                  "pounds", "bucks"}
# Rolling lengths: a month is 30 days, a quarter 90, a year 365 (calendar periods are counted on the calendar).
DAYS_PER_UNIT = {"day": 1, "days": 1, "week": 7, "weeks": 7, "fortnight": 14, "fortnights": 14, "month": 30,
                 "months": 30, "quarter": 90, "quarters": 90, "year": 365, "years": 365, "yr": 365, "yrs": 365}
MONTHS = {name: number for number, names in enumerate((
    ("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",), ("june", "jun"),
    ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"), ("october", "oct"),
    ("november", "nov"), ("december", "dec")), start=1) for name in names}

# Subjects: what a condition is about. "purchase" words become spend, visits, recency or SKUs by what follows.
MONEY, COUNT, PURCHASE, ORDER, ACTIVE, INACTIVE, LAST_ACTIVE, SIGNUP, TAGS, SKUS, SUBSCRIBED, UNSUBSCRIBED = (
    "money", "count", "purchase", "order", "active", "inactive", "last_active", "signup", "tags", "skus",
    "subscribed", "unsubscribed")
# Engagement with campaign messages (rules v3).
OPENED, CLICKED, RECEIVED, CONVERTED, NON_OPENERS = "opened", "clicked", "received", "converted", "non_openers"
ENGAGEMENT = (OPENED, CLICKED, RECEIVED, CONVERTED, NON_OPENERS)
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
_add("subject", ACTIVE, "active", "seen", "activity", "been back", "come back", "came back", "returned")
_add("subject", SIGNUP, "joined", "join", "signed up", "sign up", "signup", "signups", "registered", "new",
     "signup_days")
_add("subject", TAGS, "tagged", "tag", "tags", "tagged as", "tagged with")
_add("subject", SKUS, "sku", "skus", "product", "item")
_add("subject", SUBSCRIBED, "subscribed", "opted in", "opted-in", "can email", "can be emailed",
     "reachable by email", "subscribers", "subscribed to emails")
_add("subject", UNSUBSCRIBED, "unsubscribed", "opted out", "opted-out", "opted out of emails", "can't be emailed",
     "cannot be emailed", "can not be emailed", "cant be emailed", "unsubscribed from emails")
_add("subject", OPENED, "opened", "open", "opens", "openers")
_add("subject", CLICKED, "clicked", "click", "clicks", "clickers", "clicked on", "clicked a link",
     "clicked on a link", "clicked links")
_add("subject", RECEIVED, "received", "receive", "got", "were sent", "was sent", "been sent")
_add("subject", CONVERTED, "converted", "convert", "converted from", "convert from")
_add("subject", NON_OPENERS, "non-openers", "non openers", "nonopeners", "non-opener")
_add("noun", "message", "email", "emails", "message", "messages", "mail", "mails", "campaign", "campaigns",
     "mailer", "link", "links")
_add("op", ">", "more than", "over", "above", "greater than", "exceeding", "exceeds", "exceed", "beyond",
     "longer than", "higher than", ">", "in excess of", "upwards of", "more then", "greater then", "higher then",
     "morethan", "longer then")
_add("op", ">=", "at least", "minimum", "min", ">=", "≥", "no less than", "not less than", "no fewer than",
     "atleast", "no less then", "not less then")
_add("op", "<", "less than", "under", "below", "fewer than", "lower than", "shorter than", "<", "less then",
     "fewer then", "lower then", "lessthan")
_add("op", "<=", "at most", "no more than", "not more than", "up to", "maximum", "max", "<=", "≤", "atmost",
     "no more then", "not more then", "upto")
_add("op", "==", "exactly", "equal to", "equals", "=", "==")
_add("op", "!=", "not exactly", "other than", "not equal to", "!=", "≠", "other then")
_add("window", "<", "within", "within the last", "within the past", "in the last", "in the past", "in last",
     "in past", "during the last", "during the past", "over the last", "over the past")
_add("this", "this", "this")
_add("last", "last", "last")
_add("past", "past", "past")
_add("since", "since", "since")
_add("start", "start", "start of", "beginning of", "the start of", "the beginning of")
_add("today", "today", "today")
_add("postfix", ">=", "or more", "or above", "or over", "and above", "and up", "or higher", "+", "plus")
_add("postfix", "<=", "or less", "or fewer", "or below", "or under", "and below", "or lower")
_add("neg", "not", "not", "no", "never", "haven't", "hasn't", "have not", "has not", "didn't", "did not", "don't",
     "doesn't", "do not", "does not", "without", "outside", "weren't", "wasn't", "aren't", "isn't", "is not",
     "havent", "hasnt", "didnt", "dont", "doesnt", "werent", "wasnt", "arent", "isnt", "exclude", "excluding",
     "except", "not yet")
_add("times", "times", "times", "time")
_add("bool", "true", "true")
_add("bool", "false", "false")
_add("join", "and", "and", "&", ",", "but", "as well as")
_add("join", "or", "or", "either")
_add("between", "between", "between", "anywhere between", "somewhere between")
_add("to", "to", "to")
# Said of spend, counts or products: over all time, not over a period said next to them.
_add("alltime", "", "ever", "overall", "all time", "all-time", "so far", "to date", "in total", "till date",
     "till now", "lifetime")
_add("pronoun", "it", "it", "them")
_add("descriptor", "", "big", "high", "heavy", "top", "best", "loyal", "valuable", "high value", "high-value",
     "churned", "churning", "at-risk", "at risk", "regular", "frequent", "engaged", "occasional", "low", "small",
     "vip", "vips", "important", "key", "good", "great", "repeat", "whale", "whales")
_add("stop", "", "came from", "come from", "coming from", "live in", "living in", "based in", "located in",
     "came via", "come via", "came through", "joined via", "joined through", "signed up via",
     "signed up through", "acquired via", "acquired through", "send to", "resend to", "sent to",
     # "inactive for the past 2 months" is inactive for 2 months: a duration, not a window.
     "for the past", "for the last")

# What a descriptive word needs the prompt to say about the customers for it to be more than a label: a rule on
# one of these fields. "VIPs (spent > 50k)" is understood; "vip customers in Delhi", with no spend, is refused.
VALUE_FIELDS = frozenset({"spend", "order_spend"})
FREQUENCY_FIELDS = frozenset({"visits", "orders"})
LAPSE_FIELDS = frozenset({"inactive_days", "orders"})
EXPLAINED_BY = {
    **dict.fromkeys(("big", "heavy", "high", "low", "small", "whale", "whales", "spenders", "spender"), VALUE_FIELDS),
    **dict.fromkeys(("top", "best", "valuable", "high value", "high-value", "vip", "vips", "important", "key", "good",
                     "great"), VALUE_FIELDS | FREQUENCY_FIELDS),
    **dict.fromkeys(("regular", "frequent", "repeat", "occasional", "visitors", "visitor"), FREQUENCY_FIELDS),
    "loyal": FREQUENCY_FIELDS | {"signup_days"},
    "engaged": FREQUENCY_FIELDS | {"inactive_days", "opened", "clicked", "campaign"},
    **dict.fromkeys(("churned", "churning", "at-risk", "at risk", "lapsed", "dormant"), LAPSE_FIELDS),
}
# Subject words that only describe when nothing in their condition says how much: "lapsed customers, inactive
# 120+ days" (but "lapsed for 6 months" is the condition itself).
DESCRIPTIVE_SUBJECTS = {"lapsed", "dormant"}

STOPWORDS = {
    "users", "user", "customers", "customer", "people", "shoppers", "shopper", "buyers", "buyer", "clients", "members",
    "folks", "everyone", "anyone", "those", "who", "whose", "that", "which", "have", "has", "had", "having", "been",
    "be", "are", "is", "was", "were", "with", "for", "the", "of", "in", "on", "by", "their", "they", "total", "than",
    "ago", "show", "me", "find", "list", "get", "all", "segment", "audience", "target", "want", "give", "select", "i",
    "please", "any", "amount", "worth", "value", "money", "period", "store",
    "shop", "us", "our", "from", "a", "an", "we", "can", "something", "someone", "somebody", "basically",
    "just", "only", "who've", "who's", "did", "do", "does", "as", "at", "up", "yet", "still", "via", "both",
    "made", "make", "during", "resend", "send", "retarget", "re-target", "whom", "also", "anything",
}
EVERYDAY_WORDS = (NUMBER_WORDS, TENS, TIMES_WORDS, MULTIPLIERS, CURRENCY_WORDS, DAYS_PER_UNIT, WEAK_SUBJECTS,
                  STOPWORDS, MONTHS)
PUNCTUATION = set(".?!:;()'\"“”—–-/[]{}*")
PHRASE_LENGTH = max(len(p) for p in PHRASES)


@cache
def known_words() -> frozenset[str]:
    """Every single word the parser knows by itself (not from a brand's registries)."""
    words = {w for phrase in PHRASES for w in phrase}
    for table in EVERYDAY_WORDS:
        words |= set(table)
    return frozenset(words)
