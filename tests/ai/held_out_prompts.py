"""Held-out phrasings for the offline rules parser, written the way marketers write (typos, Indian and US number
styles, ranges, negations, "folks", "whales", "lapsed"), each with the exact rules it must give or REFUSE.

They were written and frozen before the parser was changed for them, so that the share it understands measures
phrasings it was not tuned on. Never edit an entry to make the parser pass: an expectation found to be wrong is
corrected only by a commit that says so and why.

The brand behind them: a tea and homeware shop in India with a few US customers. Today is fixed, so calendar
phrases ("this month", "last quarter", "since October") have one meaning: Wednesday 18 November 2026 (UTC).
A calendar phrase is the window from the start of the period it names up to today, today included
("this week" = since Monday 16 November = 3 days; "last quarter" = since 1 July = 141 days).
"""
from __future__ import annotations

from datetime import date

TODAY = date(2026, 11, 18)
REFUSE = "refuse"

CAMPAIGN_IDS = {
    "Diwali Sale": "64a000000000000000000001",
    "Black Friday 2026": "64a000000000000000000002",
    "Monsoon Offer": "64a000000000000000000003",
    "Welcome Series": "64a000000000000000000004",
    "Holi Colours": "64a000000000000000000007",
    "Win-back October": "64a000000000000000000008",
}

REGISTRY = {
    "attributes": {
        "types": {"city": "string", "plan": "string", "loyalty_tier": "string", "source": "string",
                  "age": "number", "loyalty_points": "number", "is_student": "boolean", "birthday": "time"},
        "values": {
            "city": ["Mumbai", "Delhi", "Bengaluru", "Pune", "Hyderabad", "Chennai", "Kolkata", "Navi Mumbai",
                     "New York", "San Francisco"],
            "plan": ["free", "silver", "gold"],
            "loyalty_tier": ["bronze", "silver", "gold", "platinum"],
            "source": ["instagram", "google", "referral", "facebook"],
        },
    },
    "tags": ["vip", "wholesale", "newsletter", "influencer", "staff", "churn-risk", "b2b", "corporate-gifting"],
    "products": {
        "TEA-01": "Masala Chai",
        "TEA-01-500": "Masala Chai",
        "TEA-02": "Darjeeling First Flush",
        "TEA-05": "Green Tea",
        "TEA-09": "Kashmiri Kahwa",
        "MUG-7": "Ceramic Mug",
        "KET-3": "Glass Kettle",
        "GIFT-1": "Diwali Gift Box",
        "GIFT-2": "Corporate Gift Hamper",
    },
    # Two campaigns share a name: a prompt naming it is ambiguous.
    "campaigns": [*({"id": cid, "name": name} for name, cid in CAMPAIGN_IDS.items()),
                  {"id": "64a000000000000000000005", "name": "Weekly Newsletter"},
                  {"id": "64a000000000000000000006", "name": "Weekly Newsletter"}],
}


def r(field: str, op: str, value) -> dict:
    return {"field": field, "op": op, "value": value}


def w(field: str, days: int, op: str, value) -> dict:
    """A behaviour rule over the last `days` days (rules v3)."""
    return {"field": field, "days": days, "op": op, "value": value}


def c(name: str, op: str, value: str) -> dict:
    """A rule on one campaign, named by the prompt (rules v3)."""
    return {"field": "campaign", "campaign_id": CAMPAIGN_IDS[name], "op": op, "value": value}


def AND(*items) -> dict:  # noqa: N802 - reads like the rules it builds
    return {"and": list(items)}


def OR(*items) -> dict:  # noqa: N802
    return {"or": list(items)}


def city(op: str, value) -> dict:
    return r("attributes.city", op, value)


VIP = r("tags", "has_any", ["vip"])
MASALA_CHAI = ["TEA-01", "TEA-01-500"]

V1 = [
    ("Customers who spent more than ₹5K", AND(r("spend", ">", 5000))),
    ("users who have spent atleast 5k", AND(r("spend", ">=", 5000))),
    ("spent over 1.5 lakh", AND(r("spend", ">", 150000))),
    ("customers who spent more than 1,50,000", AND(r("spend", ">", 150000))),
    ("spent over $2,000", AND(r("spend", ">", 2000))),
    ("customers with spend between 5k and 20k", AND(r("spend", ">=", 5000), r("spend", "<=", 20000))),
    ("spent between ₹10,000 and ₹50,000", AND(r("spend", ">=", 10000), r("spend", "<=", 50000))),
    ("visited 2 to 5 times", AND(r("visits", ">=", 2), r("visits", "<=", 5))),
    ("visited 3-5 times", AND(r("visits", ">=", 3), r("visits", "<=", 5))),
    ("spent 10k to 50k", AND(r("spend", ">=", 10000), r("spend", "<=", 50000))),
    ("spent ₹5K-₹10K", AND(r("spend", ">=", 5000), r("spend", "<=", 10000))),
    ("spent 1 to 2 lakh", AND(r("spend", ">=", 100000), r("spend", "<=", 200000))),
    ("spent between 2 and 5 lakh", AND(r("spend", ">=", 200000), r("spend", "<=", 500000))),
    ("visited between five and ten times", AND(r("visits", ">=", 5), r("visits", "<=", 10))),
    ("at least 3 but no more than 6 visits", AND(r("visits", ">=", 3), r("visits", "<=", 6))),
    ("folks who spent no more than 500 bucks", AND(r("spend", "<=", 500))),
    ("spent less then 1000", AND(r("spend", "<", 1000))),
    ("custmers who visited more than 10 times", AND(r("visits", ">", 10))),
    ("people who visted at least 3 times", AND(r("visits", ">=", 3))),
    ("inactve for 90 days", AND(r("inactive_days", ">", 90))),
    ("lapsed customers, inactive 120+ days", AND(r("inactive_days", ">=", 120))),
    ("lapsed for more than 6 months", AND(r("inactive_days", ">", 180))),
    ("haven't shopped in 3 months", AND(r("inactive_days", ">=", 90))),
    ("didn't visit for 45 days", AND(r("inactive_days", ">", 45))),
    ("not seen in the last 2 months", AND(r("inactive_days", ">=", 60))),
    ("whales who spent over 1 lakh", AND(r("spend", ">", 100000))),
    ("spent exactly ₹999", AND(r("spend", "==", 999))),
    ("spent 5k+", AND(r("spend", ">=", 5000))),
    ("spent over 5k or visited 10+ times", OR(r("spend", ">", 5000), r("visits", ">=", 10))),
    ("spent over 20k and haven't been active for 60 days",
     AND(r("spend", ">", 20000), r("inactive_days", ">", 60))),
    ("visited only once", AND(r("visits", "==", 1))),
    ("customers who came in fewer than 3 times", AND(r("visits", "<", 3))),
    ("no visits at all", AND(r("visits", "==", 0))),
    ("haven't spent anything", AND(r("spend", "==", 0))),
    ("spend under 2.5k", AND(r("spend", "<", 2500))),
    ("visited more than five times but spent less than 1k", AND(r("visits", ">", 5), r("spend", "<", 1000))),
    ("inactive for over a year or never visited", OR(r("inactive_days", ">", 365), r("visits", "==", 0))),
    ("active in the last 7 days", AND(r("inactive_days", "<", 7))),
    ("customers who were active within the past fortnight", AND(r("inactive_days", "<", 14))),
    ("spent above Rs. 3000", AND(r("spend", ">", 3000))),
    ("spent INR 10,000 or more", AND(r("spend", ">=", 10000))),
    ("spent more than 2 crore", AND(r("spend", ">", 20000000))),
    ("spent more than twenty thousand", AND(r("spend", ">", 20000))),
    ("spent over 10k, visited over 5 times and inactive for 30+ days",
     AND(r("spend", ">", 10000), r("visits", ">", 5), r("inactive_days", ">=", 30))),
    ("visited 2 or 3 times", OR(r("visits", "==", 2), r("visits", "==", 3))),
    ("spent less than 500 or more than 50000", OR(r("spend", "<", 500), r("spend", ">", 50000))),
    ("dormant 1 yr+", AND(r("inactive_days", ">=", 365))),
    ("whales", REFUSE),
    ("our high rollers", REFUSE),
    ("spent a lot", REFUSE),
    ("lapsed", REFUSE),
    ("visited 5 times and 10 times", REFUSE),
]

V2 = [
    ("vip customers who spent over 10k", AND(VIP, r("spend", ">", 10000))),
    ("vip customers in Delhi", AND(VIP, city("==", "Delhi"))),
    ("wholesale buyers in Mumbai", AND(r("tags", "has_any", ["wholesale"]), city("==", "Mumbai"))),
    ("VIPs who haven't ordered in 60 days", AND(VIP, r("inactive_days", ">=", 60))),
    ("b2b customers who spent over 1 lakh", AND(r("tags", "has_any", ["b2b"]), r("spend", ">", 100000))),
    ("influencers", AND(r("tags", "has_any", ["influencer"]))),
    ("vip or influencer", AND(r("tags", "has_any", ["vip", "influencer"]))),
    ("customers tagged influencer or staff", AND(r("tags", "has_any", ["influencer", "staff"]))),
    ("tagged vip and wholesale", AND(r("tags", "has_all", ["vip", "wholesale"]))),
    ("not tagged wholesale", AND(r("tags", "has_none", ["wholesale"]))),
    ("customers with the churn-risk tag who spent over 5k",
     AND(r("tags", "has_any", ["churn-risk"]), r("spend", ">", 5000))),
    ("customers in Mumbai who are not tagged staff", AND(city("==", "Mumbai"), r("tags", "has_none", ["staff"]))),
    ("customers tagged vip that live in Mumbai", AND(VIP, city("==", "Mumbai"))),
    ("loyalty points below 100 and tagged newsletter",
     AND(r("attributes.loyalty_points", "<", 100), r("tags", "has_any", ["newsletter"]))),
    ("customers in Bengaluru or Hyderabad", AND(city("in", ["Bengaluru", "Hyderabad"]))),
    ("customers in mumbai and pune", AND(city("in", ["Mumbai", "Pune"]))),
    ("not in Delhi or Mumbai", AND(city("not_in", ["Delhi", "Mumbai"]))),
    ("customers whose city is Hyderabad", AND(city("==", "Hyderabad"))),
    ("city not Chennai", AND(city("!=", "Chennai"))),
    ("folks from Pune who joined in the last 30 days", AND(city("==", "Pune"), r("signup_days", "<", 30))),
    ("customers on the gold plan", AND(r("attributes.plan", "==", "gold"))),
    ("customers on free or silver plan", AND(r("attributes.plan", "in", ["free", "silver"]))),
    ("platinum tier customers", AND(r("attributes.loyalty_tier", "==", "platinum"))),
    ("customers who came via instagram", AND(r("attributes.source", "==", "instagram"))),
    ("referral customers from Mumbai who spent 5k+",
     AND(r("attributes.source", "==", "referral"), city("==", "Mumbai"), r("spend", ">=", 5000))),
    ("subscribers in New York", AND(r("subscribed", "==", True), city("==", "New York"))),
    ("unsubscribed folks in Chennai", AND(r("subscribed", "==", False), city("==", "Chennai"))),
    ("customers who opted out of emails", AND(r("subscribed", "==", False))),
    ("students in Kolkata", AND(r("attributes.is_student", "==", True), city("==", "Kolkata"))),
    ("age between 18 and 24", AND(r("attributes.age", ">=", 18), r("attributes.age", "<=", 24))),
    ("age 25 to 34", AND(r("attributes.age", ">=", 25), r("attributes.age", "<=", 34))),
    ("loyalty points over 2,000", AND(r("attributes.loyalty_points", ">", 2000))),
    ("signed up in the last 2 weeks", AND(r("signup_days", "<", 14))),
    ("joined more than 2 years ago", AND(r("signup_days", ">", 730))),
    ("new signups this week", AND(r("signup_days", "<", 3))),
    ("signed up this year and subscribed", AND(r("signup_days", "<", 322), r("subscribed", "==", True))),
    ("bought TEA-09", AND(r("skus", "has_any", ["TEA-09"]))),
    ("never bought KET-3", AND(r("skus", "has_none", ["KET-3"]))),
    ("customers who bought masala chai", AND(r("skus", "has_any", MASALA_CHAI))),
    ("bought the ceramic mug but never the glass kettle",
     AND(r("skus", "has_any", ["MUG-7"]), r("skus", "has_none", ["KET-3"]))),
    ("haven't bought green tea", AND(r("skus", "has_none", ["TEA-05"]))),
    ("bought darjeeling first flush or kashmiri kahwa", AND(r("skus", "has_any", ["TEA-02", "TEA-09"]))),
    ("bought 'Glass Kettle'", AND(r("skus", "has_any", ["KET-3"]))),
    ("corporate-gifting customers who bought the corporate gift hamper",
     AND(r("tags", "has_any", ["corporate-gifting"]), r("skus", "has_any", ["GIFT-2"]))),
    ("gold members", REFUSE),
    ("silver customers", REFUSE),
    ("customers in Jaipur", REFUSE),
    ("new customers from instagram", REFUSE),
    ("bought chai", REFUSE),
    ("vip customers", AND(VIP)),
]

V3 = [
    ("bought TEA-01 in the last 30 days", AND(w("bought", 30, "has_any", ["TEA-01"]))),
    ("customers who bought masala chai this month", AND(w("bought", 18, "has_any", MASALA_CHAI))),
    ("bought TEA-02 or TEA-05 in the past week", AND(w("bought", 7, "has_any", ["TEA-02", "TEA-05"]))),
    ("didn't buy the glass kettle in the last 90 days", AND(w("bought", 90, "has_none", ["KET-3"]))),
    ("bought green tea and a ceramic mug this quarter", AND(w("bought", 49, "has_all", ["TEA-05", "MUG-7"]))),
    ("customers who ordered ceramic mug last week", AND(w("bought", 10, "has_any", ["MUG-7"]))),
    ("bought GIFT-1 last year", AND(w("bought", 687, "has_any", ["GIFT-1"]))),
    ("spent over 2000 this month", AND(w("order_spend", 18, ">", 2000))),
    ("spent more than ₹5k in the last 30 days", AND(w("order_spend", 30, ">", 5000))),
    ("spent over 10k last quarter", AND(w("order_spend", 141, ">", 10000))),
    ("spent between 1k and 5k in the last 30 days",
     AND(w("order_spend", 30, ">=", 1000), w("order_spend", 30, "<=", 5000))),
    ("spent nothing this month", AND(w("order_spend", 18, "==", 0))),
    ("spent over 5k since 1 October", AND(w("order_spend", 49, ">", 5000))),
    ("whales who spent over 50k in the last 90 days", AND(w("order_spend", 90, ">", 50000))),
    ("customers in Mumbai who spent over 5k in the last 60 days",
     AND(city("==", "Mumbai"), w("order_spend", 60, ">", 5000))),
    ("ordered 3+ times in 60 days", AND(w("orders", 60, ">=", 3))),
    ("placed at least 2 orders in the past 2 weeks", AND(w("orders", 14, ">=", 2))),
    ("ordered more than 3 times this year", AND(w("orders", 322, ">", 3))),
    ("ordered twice or more in the last 45 days", AND(w("orders", 45, ">=", 2))),
    ("hasn't bought since October", AND(w("orders", 49, "==", 0))),
    ("haven't ordered since 1 Sep", AND(w("orders", 79, "==", 0))),
    ("no purchase since last month", AND(w("orders", 49, "==", 0))),
    ("spent over 1k in the last 30 days or ordered 5+ times this quarter",
     OR(w("order_spend", 30, ">", 1000), w("orders", 49, ">=", 5))),
    ("opened an email in the last 2 weeks", AND(w("opened", 14, ">=", 1))),
    ("haven't opened any email in 30 days", AND(w("opened", 30, "==", 0))),
    ("opened at least 3 emails in the past month", AND(w("opened", 30, ">=", 3))),
    ("vip customers who opened an email this week", AND(VIP, w("opened", 3, ">=", 1))),
    ("clicked a link this week", AND(w("clicked", 3, ">=", 1))),
    ("didn't click anything in the last month", AND(w("clicked", 30, "==", 0))),
    ("no clicks in 2 weeks", AND(w("clicked", 14, "==", 0))),
    ("got more than 5 messages in the last 7 days", AND(w("messages_received", 7, ">", 5))),
    ("received fewer than 2 emails this month", AND(w("messages_received", 18, "<", 2))),
    ("opened more than 2 emails in the last 2 weeks and spent under 1k this month",
     AND(w("opened", 14, ">", 2), w("order_spend", 18, "<", 1000))),
    ("didn't open the Diwali sale campaign", AND(c("Diwali Sale", "!=", "opened"))),
    ("resend to non-openers of the Diwali Sale campaign",
     AND(c("Diwali Sale", "==", "received"), c("Diwali Sale", "!=", "opened"))),
    ("people who got the Monsoon Offer but didn't open it",
     AND(c("Monsoon Offer", "==", "received"), c("Monsoon Offer", "!=", "opened"))),
    ("clicked the black friday 2026 email", AND(c("Black Friday 2026", "==", "clicked"))),
    ("opened the Welcome Series", AND(c("Welcome Series", "==", "opened"))),
    ("converted from the Diwali Sale campaign", AND(c("Diwali Sale", "==", "converted"))),
    ("received the Holi Colours campaign and clicked it",
     AND(c("Holi Colours", "==", "received"), c("Holi Colours", "==", "clicked"))),
    ("non-openers of win-back october",
     AND(c("Win-back October", "==", "received"), c("Win-back October", "!=", "opened"))),
    ("didn't open the weekly newsletter", REFUSE),
    ("didn't open the Christmas campaign", REFUSE),
    ("ordered more than 5 times in the last 3 years", REFUSE),
    ("never opened an email", REFUSE),
    ("got an sms in the last 3 days", REFUSE),
    ("bought TEA-01 recently", REFUSE),
    ("opened the diwali sale campaign in the last 7 days", REFUSE),
]

PROMPTS = [*(("v1", p, e) for p, e in V1), *(("v2", p, e) for p, e in V2), *(("v3", p, e) for p, e in V3)]
