"""A second held-out table, written after the parser was rebuilt and committed before it was first run on them:
the held-out table's phrasings were known while the parser was written, so this one measures phrasings its author
had not seen the parser answer. Same brand, date and conventions as `held_out_prompts`; never edited to pass (an
expectation found wrong is corrected only by a commit that says so)."""
from __future__ import annotations

from tests.ai.held_out_prompts import AND, OR, REFUSE, VIP, c, city, r, w

V1 = [
    ("customers with more than ₹25,000 in purchases", AND(r("spend", ">", 25000))),
    ("anyone who's spent under a thousand", AND(r("spend", "<", 1000))),
    ("shoppers that spent 3k or above", AND(r("spend", ">=", 3000))),
    ("customers who visited 7+ times", AND(r("visits", ">=", 7))),
    ("users with visits between 1 and 3", AND(r("visits", ">=", 1), r("visits", "<=", 3))),
    ("haven't been back in 90 days", AND(r("inactive_days", ">=", 90))),
    ("inactive for the past 2 months", AND(r("inactive_days", ">", 60))),
    ("spent ₹500+", AND(r("spend", ">=", 500))),
    ("spent less than half a lakh", REFUSE),
    ("people whose total spend is over 8k", AND(r("spend", ">", 8000))),
    ("lifetime spend of at least 12,000", AND(r("spend", ">=", 12000))),
    ("visited no fewer than 4 times", AND(r("visits", ">=", 4))),
    ("ltv > 50k", AND(r("spend", ">", 50000))),
    ("dormant for 2+ months", AND(r("inactive_days", ">=", 60))),
    ("last purchase over 60 days ago", AND(r("inactive_days", ">", 60))),
    ("customers we haven't seen since 45 days", AND(r("inactive_days", ">", 45))),
    ("spent over 3000 and came in at least 5 times", AND(r("spend", ">", 3000), r("visits", ">=", 5))),
    ("spent more than Rs 750 or visited more than 2 times", OR(r("spend", ">", 750), r("visits", ">", 2))),
    ("big spenders (over ₹1L)", AND(r("spend", ">", 100000))),
    ("visited exactly 0 times", AND(r("visits", "==", 0))),
    ("whales spending 2 lakh+", AND(r("spend", ">=", 200000))),
    ("spent between ₹2k-₹5k", AND(r("spend", ">=", 2000), r("spend", "<=", 5000))),
]

V2 = [
    ("VIP shoppers from Hyderabad", AND(VIP, city("==", "Hyderabad"))),
    ("wholesale clients outside Mumbai", AND(r("tags", "has_any", ["wholesale"]), city("!=", "Mumbai"))),
    ("customers tagged 'influencer'", AND(r("tags", "has_any", ["influencer"]))),
    ("members on the silver plan in Pune", AND(r("attributes.plan", "==", "silver"), city("==", "Pune"))),
    ("not on the free plan", AND(r("attributes.plan", "!=", "free"))),
    ("customers from google or referral", AND(r("attributes.source", "in", ["google", "referral"]))),
    ("students who spent over 2k", AND(r("attributes.is_student", "==", True), r("spend", ">", 2000))),
    ("loyalty points 1000+", AND(r("attributes.loyalty_points", ">=", 1000))),
    ("age under 21", AND(r("attributes.age", "<", 21))),
    ("signed up in the past 10 days", AND(r("signup_days", "<", 10))),
    ("joined over 6 months ago and never ordered", AND(r("signup_days", ">", 180), r("visits", "==", 0))),
    ("bought a Glass Kettle or Ceramic Mug", AND(r("skus", "has_any", ["KET-3", "MUG-7"]))),
    ("didn't buy kashmiri kahwa", AND(r("skus", "has_none", ["TEA-09"]))),
    ("customers who have purchased TEA-02", AND(r("skus", "has_any", ["TEA-02"]))),
    ("subscribed vips", AND(r("subscribed", "==", True), VIP)),
    ("unsubscribed in Kolkata", AND(r("subscribed", "==", False), city("==", "Kolkata"))),
    ("customers in Chennai or Kolkata who are subscribed",
     AND(city("in", ["Chennai", "Kolkata"]), r("subscribed", "==", True))),
    ("staff members", AND(r("tags", "has_any", ["staff"]))),
    ("gold tier customers in Delhi", AND(r("attributes.loyalty_tier", "==", "gold"), city("==", "Delhi"))),
    ("from New York or San Francisco and spent over $500",
     AND(city("in", ["New York", "San Francisco"]), r("spend", ">", 500))),
    ("customers in Mumbai with the vip tag", AND(city("==", "Mumbai"), VIP)),
    ("bronze members", AND(r("attributes.loyalty_tier", "==", "bronze"))),
]

V3 = [
    ("ordered in the last 7 days", AND(r("inactive_days", "<", 7))),
    ("placed more than 2 orders this week", AND(w("orders", 3, ">", 2))),
    ("spent ₹10k+ in the past 3 months", AND(w("order_spend", 90, ">=", 10000))),
    ("bought darjeeling first flush since September", REFUSE),
    ("opened at least one email in the last 14 days", AND(w("opened", 14, ">=", 1))),
    ("zero opens in the past month", AND(w("opened", 30, "==", 0))),
    ("clicked 2 or more emails this month", AND(w("clicked", 18, ">=", 2))),
    ("received 10+ messages in the last 30 days", AND(w("messages_received", 30, ">=", 10))),
    ("customers who opened the Diwali Sale email", AND(c("Diwali Sale", "==", "opened"))),
    ("didn't click the Welcome Series", AND(c("Welcome Series", "!=", "clicked"))),
    ("non-openers of Holi Colours", AND(c("Holi Colours", "==", "received"), c("Holi Colours", "!=", "opened"))),
    ("got the Black Friday 2026 campaign", AND(c("Black Friday 2026", "==", "received"))),
    ("converted from the monsoon offer", AND(c("Monsoon Offer", "==", "converted"))),
    ("haven't placed an order since August", REFUSE),
    ("spent nothing since 1 Oct", AND(w("order_spend", 49, "==", 0))),
    ("vip customers who spent over 20k this year", AND(VIP, w("order_spend", 322, ">", 20000))),
    ("bought the Diwali gift box last year", REFUSE),
    ("opened the Monsoon Offer but didn't click it",
     AND(c("Monsoon Offer", "==", "opened"), c("Monsoon Offer", "!=", "clicked"))),
    ("bought masala chai twice this month", REFUSE),
    ("ordered 3 times in the last 30 days but not in the last 7 days", REFUSE),
    ("received the Diwali Sale and bought something since", REFUSE),
    ("customers who clicked but did not convert from the Diwali Sale",
     AND(c("Diwali Sale", "==", "clicked"), c("Diwali Sale", "!=", "converted"))),
]

PROMPTS = [*(("v1", p, e) for p, e in V1), *(("v2", p, e) for p, e in V2), *(("v3", p, e) for p, e in V3)]
