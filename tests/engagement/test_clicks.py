"""Click tracking through the real parts: links rewritten in what the channel is handed (the log keeps the message as
written), the public redirect (302 at once after one queue message; anything we did not sign is a 404 page, with no
database and no queue touched), and the click consumer counting each click once however it is delivered."""
from __future__ import annotations

import json
import random
import re
import uuid
from datetime import timedelta
from urllib.parse import quote, urlsplit

import pytest
from bson import ObjectId

from crm.engagement import links
from crm.engagement.links import LinkTracker, campaign_links, read_token, token_for
from crm.messages import pack, unpack
from crm.models.campaigns import MAX_MESSAGE_LENGTH
from crm.models.common import to_iso, utcnow

FANOUT, SEND, CLICKS = "CampaignFanoutQueue", "CampaignSendQueue", "ClickQueue"
SALE, COAT = "https://shop.example.com/sale", "https://shop.example.com/coat?size=m&colour=red"
MESSAGE = ("Hi {{first_name}}, the sale: " + SALE + ". The coat: <a href=\"" + COAT.replace("&", "&amp;")
           + "\">coat</a>, the sale again (" + SALE + "). Leave: {{unsubscribe_url}}")
TRACKED = re.compile(r"http://localhost:4000/c/([A-Za-z0-9_-]+)")


def _secret() -> str:
    from crm.config import get_settings

    return get_settings().secret("unsubscribe_secret")


def _campaign(api, segment_id, **fields) -> dict:
    status, campaign, _ = api.post("/api/campaigns", {"name": "Winter sale", "segment_id": segment_id,
                                                      "message": MESSAGE, **fields})
    assert status == 202, campaign
    return campaign


def test_links_are_tracked_in_what_the_vendor_is_sent_and_the_log_keeps_the_message_as_written(
        api, db, consumers, vendor, segment_id):
    campaign = _campaign(api, segment_id)
    stored = db.campaigns.find_one({"_id": ObjectId(campaign["id"])})
    assert stored["links"] == [SALE, COAT], "ordered, distinct, the HTML attribute's value unescaped"
    consumers.drain(FANOUT)
    consumers.drain(SEND)

    sent = [m for r in vendor.received if r["status"] == 202 for m in r["messages"]]
    assert len(sent) == 120
    logs = {str(log["_id"]): log for log in db.communication_logs.find({"campaign_id": stored["_id"]})}
    for message in sent:
        log = logs[message["log_id"]]
        assert "http://localhost:4000/c/" not in log["message"] and SALE in log["message"], "stored as written"
        text = message["message"]
        assert log["unsubscribe_url"] in text, "the unsubscribe link is sent as it is"
        assert SALE not in text and "coat?size" not in text and len(text) <= MAX_MESSAGE_LENGTH
        tokens = TRACKED.findall(text)
        assert len(tokens) == 3 and tokens[0] == tokens[2], "the same URL twice: one link, one token"
        named = [read_token(_secret(), token) for token in tokens]
        assert [(c.log_id, c.link, c.url) for c in named] == [(log["_id"], 0, SALE), (log["_id"], 1, COAT),
                                                              (log["_id"], 0, SALE)]
        assert f'<a href="http://localhost:4000/c/{tokens[1]}">coat</a>' in text, "the HTML link stays an HTML link"
    assert len({TRACKED.findall(m["message"])[0] for m in sent}) == 120, "a token per recipient"


def test_a_variants_links_are_the_campaigns_and_tracking_off_sends_links_as_written(
        api, db, consumers, vendor, segment_id, monkeypatch):
    from crm.config import get_settings

    campaign = _campaign(api, segment_id, message=None, variants=[
        {"name": "A", "message": "A: https://shop.example.com/a " + SALE},
        {"name": "B", "message": "B: " + SALE + " https://shop.example.com/b"}])
    assert db.campaigns.find_one({"_id": ObjectId(campaign["id"])})["links"] == [
        "https://shop.example.com/a", SALE, "https://shop.example.com/b"]
    monkeypatch.setenv("TRACK_CLICKS", "false")
    get_settings.cache_clear()
    consumers.drain(FANOUT)
    consumers.drain(SEND)
    sent = [m["message"] for r in vendor.received if r["status"] == 202 for m in r["messages"]]
    assert len(sent) == 120 and all(SALE in text and "/c/" not in text for text in sent)


def test_a_test_send_is_sent_with_its_links_as_written(api, db, vendor):
    """A test names no log: a tracked link in it would count nothing, so its reader gets the page itself."""
    status, body, _ = api.post("/api/campaigns/test-send", {"to": ["tester@example.com"], "message": MESSAGE})
    assert status == 200, body
    [message] = [m for r in vendor.received if r["status"] == 202 for m in r["messages"]]
    assert SALE in message["message"] and "/c/" not in message["message"]


def test_personalised_links_are_tracked_and_links_a_customer_brought_in_are_not():
    tracker = LinkTracker("https://crm.example.com/", "s3cret")
    template = "Hi {{name}}: https://shop.example.com/u/{{attributes.code}}/deals, https://shop.example.com/x"
    campaign = campaign_links([template])
    assert campaign == ["https://shop.example.com/u/{{attributes.code}}/deals", "https://shop.example.com/x"]
    log_id = ObjectId()
    message = {"log_id": str(log_id), "message": "Hi http://evil.example.com: https://shop.example.com/u/AB12/deals, "
                                                 "https://shop.example.com/x"}
    text = tracker.tracked(message, campaign)["message"]
    assert text.startswith("Hi http://evil.example.com: https://crm.example.com/c/"), "a name's link is no link of ours"
    tokens = re.findall(r"https://crm\.example\.com/c/([A-Za-z0-9_-]+)", text)
    assert [(c.link, c.url) for c in (read_token("s3cret", t) for t in tokens)] == [
        (0, "https://shop.example.com/u/AB12/deals"), (1, "https://shop.example.com/x")]
    assert tracker.tracked({**message, "message": "no links"}, campaign)["message"] == "no links"
    assert tracker.tracked(message, []) == message, "a campaign from before tracking has no links: as written"


def _sent(tracker: LinkTracker, template: str, personalised: str) -> tuple[str, list[links.Click]]:
    """What the channel is handed for a recipient's message made from a template, and what its tokens name."""
    text = tracker.tracked({"log_id": str(ObjectId()), "message": personalised}, campaign_links([template]))["message"]
    return text, [read_token("s3cret", t) for t in re.findall(r"https://crm\.example\.com/c/([A-Za-z0-9_-]+)", text)]


@pytest.mark.parametrize("value", ["@evil.example/phish", ".evil.example/x", ":8443@evil.example", "/deals"])
def test_a_link_with_a_placeholder_right_after_its_host_is_never_tracked(value):
    """What follows the host may change it (`@` makes it userinfo, `.` a longer host, `:` a port): we never sign such
    a link, even for a recipient whose value leaves the host as it is."""
    tracker = LinkTracker("https://crm.example.com", "s3cret")
    template = "Your page: https://shop.example.com{{attributes.landing}}, the sale: " + SALE
    text, clicks = _sent(tracker, template, f"Your page: https://shop.example.com{value}, the sale: {SALE}")
    assert f"https://shop.example.com{value}," in text, "sent as written"
    assert [(c.link, c.url) for c in clicks] == [(1, SALE)], "the campaign's other link is still tracked"


@pytest.mark.parametrize("template, personalised", [
    ("https://{{attributes.shop}}.example.com/sale", "https://shop.example.com/sale"),
    ("https://shop.{{attributes.region}}.example.com/sale", "https://shop.eu.example.com/sale"),
    ("https://{{name}}@shop.example.com/sale", "https://ada@shop.example.com/sale"),
    ("https://shop.example.com:{{attributes.port}}/sale", "https://shop.example.com:443/sale"),
    ("https://shop.example.{{attributes.tld}}/sale", "https://shop.example.evil.example/sale"),
])
def test_a_link_with_a_placeholder_in_its_host_userinfo_or_port_is_never_tracked(template, personalised):
    tracker = LinkTracker("https://crm.example.com", "s3cret")
    text, clicks = _sent(tracker, f"Go {template} now", f"Go {personalised} now")
    assert text == f"Go {personalised} now" and clicks == []


@pytest.mark.parametrize("name", ["@evil.example", "//evil.example", "\\\\evil.example", "x@evil.example:80",
                                  "\\@evil.example"])
def test_a_name_with_at_or_slashes_cannot_move_a_tracked_link_off_its_host(name):
    """After the host's written end a name stays in the path: the link is tracked and leads to the campaign's host;
    right after the host it could become the host, so that link goes as written."""
    tracker = LinkTracker("https://crm.example.com", "s3cret")
    text, clicks = _sent(tracker, "Hi https://shop.example.com/{{name}}", f"Hi https://shop.example.com/{name}")
    assert [(c.link, c.url) for c in clicks] == [(0, f"https://shop.example.com/{name}")]
    assert urlsplit(clicks[0].url).hostname == "shop.example.com"
    text, clicks = _sent(tracker, "Hi https://shop.example.com{{name}}", f"Hi https://shop.example.com{name}")
    assert text == f"Hi https://shop.example.com{name}" and clicks == [], "sent as written"


def test_a_recipients_url_leading_to_another_host_than_its_link_was_written_with_is_not_tracked():
    tracker = LinkTracker("https://crm.example.com", "s3cret")
    template = "Hi https://shop.example.com/{{attributes.path}}"
    assert links.place_of("https://shop.example.com/ok", (campaign_links([template])[0],)) == 0
    for url in ("https://evil.example/x", "http://shop.example.com/x", "https://shop.example.com:444/x"):
        assert links.place_of(url, (campaign_links([template])[0],)) is None, url
    assert _sent(tracker, template, "Hi https://evil.example/x")[1] == []


def test_an_attribute_cannot_choose_where_our_signed_link_leads(api, db, consumers, vendor):
    """Through the send: a customer whose attribute would put evil.example in the host gets the link as written, and
    the link whose host was written out is still tracked to that host."""
    from crm.services.customers import upsert_customers

    upsert_customers(db, [{"name": "Mallory", "email": "m@example.com", "accepted_at": to_iso(utcnow()),
                           "attributes": {"landing": "@evil.example/phish"}}])
    status, segment, _ = api.post("/api/segments", {"name": "Landing", "rules": {
        "field": "attributes.landing", "op": "exists", "value": True}})
    assert status == 201, segment
    status, campaign, _ = api.post("/api/campaigns", {
        "name": "Deep links", "segment_id": segment["id"],
        "message": "Your page: https://shop.example.com{{attributes.landing}} or "
                   "https://shop.example.com/{{attributes.landing}} {{unsubscribe_url}}"})
    assert status == 202, campaign
    consumers.drain(FANOUT)
    consumers.drain(SEND)
    [message] = [m["message"] for r in vendor.received if r["status"] == 202 for m in r["messages"]]
    assert "Your page: https://shop.example.com@evil.example/phish or " in message
    [token] = TRACKED.findall(message)
    status, _, headers = api.get(f"/c/{token}", token="")
    assert status == 302 and headers["location"] == "https://shop.example.com/@evil.example/phish"
    assert urlsplit(headers["location"]).hostname == "shop.example.com"


def test_a_link_whose_tracked_form_would_not_fit_the_vendors_limit_is_sent_as_written():
    tracker = LinkTracker("https://crm.example.com", "s3cret")
    filler = "x" * (MAX_MESSAGE_LENGTH - 150)
    text = f"https://a.example.com/1 https://a.example.com/2 {filler}"
    sent = tracker.tracked({"log_id": str(ObjectId()), "message": text}, campaign_links([text]))["message"]
    assert len(sent) <= MAX_MESSAGE_LENGTH
    assert "https://crm.example.com/c/" in sent and "https://a.example.com/2" in sent, "the first fits, not the second"


def test_a_token_names_its_log_link_and_url_and_its_format_does_not_change():
    log_id = ObjectId("6744d1a0c2b1f3a4d5e6f701")
    token = token_for("s3cret", log_id, 2, "https://shop.example.com/sale?a=1&b=é")
    # Links in e-mails already sent must keep working: the format is pinned.
    assert token == "Z0TRoMKx86TV5vcBAAJodHRwczovL3Nob3AuZXhhbXBsZS5jb20vc2FsZT9hPTEmYj3Dqb_YYQm4a90Spmam4RLB0TA"
    assert read_token("s3cret", token) == links.Click(log_id, 2, "https://shop.example.com/sale?a=1&b=é")
    assert read_token("other", token) is None
    assert token_for("s3cret", log_id, 3, "https://shop.example.com/sale?a=1&b=é") != token


def _bad_tokens(secret: str) -> dict[str, str]:
    # One with a character base64url spells its own way ("-", "+" in standard base64), to spell it the other way.
    good = next(t for t in (token_for(secret, ObjectId(), 0, SALE) for _ in range(1000)) if "-" in t)
    flipped = good[:20] + ("B" if good[20] != "B" else "C") + good[21:]
    return {"forged": token_for("not-our-secret", ObjectId(), 0, "https://evil.example.com"),
            "garbled": flipped, "truncated": good[:-3], "padded": good + "==", "longer": good + "A",
            "re-encoded": quote(good.replace("-", "+"), safe=""), "odd bytes": "%00%ff" + good,
            "not ascii": "é" * 60, "huge": "A" * 5000, "empty-ish": "x",
            **{f"signed, leading to {url!r}": token_for(secret, ObjectId(), 0, url) for url in (
                "javascript:alert(1)", "data:text/html,<script>alert(1)</script>", "https:evil.example",
                "//evil.example/x", " https://evil.example", "https:///evil.example", "https://:443/x",
                "https://shop.example.com\r\nSet-Cookie: a=b", "https://shop.example.com:x/")}}


def test_anything_we_did_not_sign_is_a_404_page_with_no_database_and_nothing_queued(api, consumers, monkeypatch):
    from crm.config import get_settings
    from offline import services

    secret = _secret()
    # A database that does not answer: the redirect never reads one, for a good link or a bad one.
    monkeypatch.setenv("MONGO_URI", f"mongodb://127.0.0.1:{services.free_port()}/")
    get_settings.cache_clear()
    for what, token in _bad_tokens(secret).items():
        status, page, headers = api.get(f"/c/{token}", token="")
        assert status == 404 and "not valid" in page and "location" not in headers, what
        assert headers["content-type"].startswith("text/html") and "frame-ancestors 'none'" in headers[
            "content-security-policy"], what
    assert consumers.messages(CLICKS) == [], "nothing queued for a link we did not sign"
    status, _, headers = api.get(f"/c/{token_for(secret, ObjectId(), 0, SALE)}", token="")
    assert status == 302 and headers["location"] == SALE


def test_a_click_is_one_queue_message_then_a_302_to_the_link(api, consumers):
    log_id = ObjectId()
    for _ in range(2):
        status, _, headers = api.get(f"/c/{token_for(_secret(), log_id, 1, COAT)}", token="")
        assert status == 302 and headers["location"] == COAT and headers["cache-control"] == "no-store"
    records = [r for m in consumers.messages(CLICKS) for r in unpack(m["Body"])[1]]
    assert len(records) == 2 and records[0]["click_id"] != records[1]["click_id"], "each click is its own"
    for record in records:
        assert set(record) == {"click_id", "log_id", "link", "at"}
        assert uuid.UUID(record["click_id"]).version == 4
        assert (record["log_id"], record["link"]) == (str(log_id), 1)
        assert abs((utcnow() - _time(record["at"])).total_seconds()) < 60


def test_a_click_still_redirects_when_the_queue_cannot_be_reached(api, consumers, monkeypatch, caplog):
    from crm.config import get_settings
    from crm.observability import logger

    monkeypatch.setenv("SQS_CLICK_QUEUE_URL", consumers.queues[CLICKS].url + "-gone")
    get_settings.cache_clear()
    status, _, headers = api.get(f"/c/{token_for(_secret(), ObjectId(), 0, SALE)}", token="")
    assert status == 302 and headers["location"] == SALE
    logged = "\n".join(logger.registered_formatter.format(r) for r in caplog.records if r.levelname == "WARNING")
    assert "click not recorded" in logged


def _time(text: str):
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _click(log_id, link: int, at) -> dict:
    return {"click_id": str(uuid.uuid4()), "log_id": str(log_id), "link": link, "at": to_iso(at)}


@pytest.fixture
def clicked_campaign(api, db, consumers, segment_id, monkeypatch):
    """A campaign fanned out (its logs QUEUED: a click counts whatever the log's status), whose roll-up waits, so
    that what the clicks left on the logs can be read."""
    from crm.config import get_settings

    campaign_id = ObjectId(_campaign(api, segment_id)["id"])
    consumers.drain(FANOUT)
    monkeypatch.setenv("ROLL_UP_SECONDS", "3600")
    get_settings.cache_clear()
    db.campaigns.update_one({"_id": campaign_id}, {"$set": {"rolled_up_at": utcnow()}})
    logs = [log["_id"] for log in db.communication_logs.find({"campaign_id": campaign_id}).sort("_id", 1).limit(4)]
    return campaign_id, logs


def test_a_batch_delivered_twice_and_out_of_order_counts_each_click_once(api, db, consumers, clicked_campaign):
    campaign_id, (ada, bob, cy, dee) = clicked_campaign
    start = utcnow().replace(microsecond=0)
    clicks = [_click(ada, 0, start + timedelta(seconds=3)), _click(ada, 0, start + timedelta(seconds=1)),
              _click(ada, 1, start + timedelta(seconds=2)), _click(bob, 1, start + timedelta(seconds=5)),
              _click(cy, 0, start + timedelta(seconds=4)), _click(ObjectId(), 0, start)]  # a log that does not exist
    bodies = [pack("clicks", [c], 256 * 1024)[0] for c in clicks]
    twice = bodies * 2
    random.Random(3).shuffle(twice)
    for batch in (twice[:5], twice[5:], bodies[::-1]):
        assert consumers.deliver(CLICKS, batch) == {"batchItemFailures": []}

    logs = {log["_id"]: log for log in db.communication_logs.find({"_id": {"$in": [ada, bob, cy, dee]}})}
    assert logs[ada]["events"]["clicked"] == start + timedelta(seconds=1), "the earliest click"
    assert sorted(logs[ada]["click_ids"]) == sorted(c["click_id"] for c in clicks[:3])
    assert sorted(logs[ada]["tally"]) == sorted(["clicked", "link_stats.0.recipients", "link_stats.0.clicks",
                                                 "link_stats.0.clicks", "link_stats.1.recipients",
                                                 "link_stats.1.clicks"])
    assert sorted(logs[bob]["tally"]) == ["clicked", "link_stats.1.clicks", "link_stats.1.recipients"]
    assert sorted(logs[cy]["tally"]) == ["clicked", "link_stats.0.clicks", "link_stats.0.recipients"]
    assert all(logs[log]["pending"] is True for log in (ada, bob, cy)), "waiting for the roll-up"
    assert "events" not in logs[dee] and "tally" not in logs[dee]

    from crm.services.delivery import roll_up

    roll_up(db, campaign_id)
    campaign = db.campaigns.find_one({"_id": campaign_id})
    assert campaign["stats"]["clicked"] == 3, "recipients, not clicks"
    assert campaign["link_stats"] == {"0": {"clicks": 3, "recipients": 2}, "1": {"clicks": 2, "recipients": 2}}
    assert db.communication_logs.count_documents({"campaign_id": campaign_id, "pending": True}) == 0
    status, report, _ = api.get(f"/api/campaigns/{campaign_id}/report")
    assert status == 200 and report["links"] == [{"url": SALE, "clicks": 3, "recipients": 2},
                                                 {"url": COAT, "clicks": 2, "recipients": 2}]
    _, detail, _ = api.get(f"/api/campaigns/{campaign_id}?limit=200")
    clicked_at = {log["id"]: log["clicked_at"] for log in detail["logs"]["items"] if log["clicked_at"]}
    assert clicked_at == {str(log): to_iso(start + timedelta(seconds=first))
                          for log, first in ((ada, 1), (bob, 5), (cy, 4))}, "the campaign's page shows clicked_at"


def test_a_recipients_clicks_beyond_the_cap_are_not_counted_and_a_bad_message_fails_alone(
        db, consumers, clicked_campaign):
    from crm.engagement.clicks import MAX_CLICKS_KEPT

    _, (ada, *_) = clicked_campaign
    bodies = [pack("clicks", [_click(ada, 0, utcnow())], 256 * 1024)[0] for _ in range(MAX_CLICKS_KEPT + 5)]
    broken = [pack("clicks", [{"click_id": "not-a-uuid", "log_id": str(ada), "link": 0, "at": to_iso(utcnow())}],
                   256 * 1024)[0], json.dumps({"kind": "sends", "v": 1, "records": []}), "not json"]
    for start in range(0, len(bodies), 10):
        assert consumers.deliver(CLICKS, bodies[start:start + 10]) == {"batchItemFailures": []}
    result = consumers.deliver(CLICKS, broken + bodies[:2])
    assert len(result["batchItemFailures"]) == 3, "the unreadable ones come back, not their neighbours"
    log = db.communication_logs.find_one({"_id": ada})
    assert len(log["click_ids"]) == MAX_CLICKS_KEPT
    assert log["tally"].count("link_stats.0.clicks") == MAX_CLICKS_KEPT and log["tally"].count("clicked") == 1
