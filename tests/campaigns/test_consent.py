"""Consent at send time: recipients suppressed, erased or no longer subscribed when their message is about to go
get a SKIPPED log with the reason and no message, counted in stats.skipped, however the send is redelivered."""
from __future__ import annotations

from bson import ObjectId

from crm.consent import suppressions
from tests.helpers import stats

FANOUT, SEND = "CampaignFanoutQueue", "CampaignSendQueue"


def _campaign(api, segment_id, consumers) -> str:
    status, campaign, _ = api.post("/api/campaigns", {"name": "Sale", "segment_id": segment_id,
                                                      "message": "Hi {{name}}, bye: {{unsubscribe_url}}"})
    assert status == 202, campaign
    consumers.drain(FANOUT)
    return campaign["id"]


def test_who_may_no_longer_be_messaged_when_the_send_comes_is_skipped_once(api, db, consumers, segment_id, vendor):
    campaign_id = _campaign(api, segment_id, consumers)
    # After the fan-out wrote their logs, before their sends: one unsubscribes, one bounces, one denies consent,
    # one is erased.
    suppressions.add(db.suppressions, "C000@example.com", "unsubscribed")
    suppressions.add(db.suppressions, "c001@example.com", "bounced")
    db.customers.update_one({"email": "c002@example.com"}, {"$set": {"email_consent": "denied"}})
    db.customers.delete_one({"email": "c003@example.com"})
    bodies = [m["Body"] for m in consumers.messages(SEND)]
    assert consumers.deliver(SEND, bodies + bodies) == {"batchItemFailures": []}

    skipped = {log["to"]["email"]: log["reason"] for log in db.communication_logs.find({"status": "SKIPPED"})}
    # The erased person's log, written before their erasure blanked their other logs, is blanked as it is skipped.
    assert skipped == {"c000@example.com": "unsubscribed", "c001@example.com": "bounced",
                       "c002@example.com": "not_subscribed", None: "erased"}
    erased = db.communication_logs.find_one({"reason": "erased"})
    assert erased["message"] == "" and erased["to"] == {"name": None, "email": None, "phone": None}
    sent_to = {m["to"]["email"] for call in vendor.received for m in call["messages"]}
    assert len(sent_to) == 116 and not sent_to & {*skipped, "c003@example.com"}, "no message to anyone skipped"
    campaign = db.campaigns.find_one({"_id": ObjectId(campaign_id)})
    assert campaign["stats"] == stats(audience=120, queued=116, skipped=4)


def test_an_opt_in_campaign_messages_only_those_who_granted_consent(api, db, consumers, segment_id, vendor,
                                                                    monkeypatch):
    from crm.config import get_settings

    db.customers.update_many({"email": {"$in": ["c010@example.com", "c011@example.com"]}},
                             {"$set": {"email_consent": "granted"}})
    monkeypatch.setenv("CONSENT_MODE", "opt_in")
    get_settings.cache_clear()
    campaign_id = _campaign(api, segment_id, consumers)
    consumers.drain(SEND)
    sent_to = {m["to"]["email"] for call in vendor.received for m in call["messages"]}
    assert sent_to == {"c010@example.com", "c011@example.com"}
    assert db.campaigns.find_one({"_id": ObjectId(campaign_id)})["stats"] == stats(audience=120, queued=2,
                                                                                     skipped=118)
    assert {log["reason"] for log in db.communication_logs.find({"status": "SKIPPED"})} == {"not_subscribed"}


def test_each_message_carries_its_recipients_own_unsubscribe_link(api, db, consumers, segment_id, vendor):
    from crm.config import get_settings
    from crm.consent.links import customer_of

    _campaign(api, segment_id, consumers)
    consumers.drain(SEND)
    secret = get_settings().secret("unsubscribe_secret")
    for log in db.communication_logs.find({}).limit(5):
        url = log["unsubscribe_url"]
        assert url.startswith("http://localhost:4000/u/") and log["message"].endswith(url)
        assert customer_of(secret, url.rsplit("/", 1)[1]) == log["customer_id"]
