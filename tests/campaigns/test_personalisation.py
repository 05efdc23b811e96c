"""Personalisation: {{name}}, {{first_name}} and {{attributes.<key>}} filled in per recipient, in one pass, from
only the attributes the message names; a message that could outgrow the vendor once filled is refused."""
from __future__ import annotations

from datetime import datetime, timezone

from bson import ObjectId
from pymongo import MongoClient, monitoring

from crm.models.campaigns import LONGEST_NUMBER_TEXT, LONGEST_TIME_TEXT, MAX_MESSAGE_LENGTH
from crm.services import campaigns as campaign_service
from tests.helpers import assert_error

INGEST, FANOUT = "CustomerIngestQueue", "CampaignFanoutQueue"
MESSAGE = ("Hi {{first_name}} ({{name}}) from {{attributes.city}}: {{attributes.points}} points, "
           "ratio {{attributes.ratio}}, vip {{attributes.vip}}, since {{attributes.since}}, "
           "aka {{attributes.nickname}}. {{attributes.City}} {{foo}} {{attributes.}}")


def _ingest(api, consumers, customers: list[dict]) -> None:
    status, body, _ = api.post("/api/customers", {"customers": customers})
    assert status == 202, body
    consumers.drain(INGEST)


def _campaign(api, message: str) -> dict:
    status, segment, _ = api.post("/api/segments", {"name": "Everyone", "rules": {"field": "visits", "op": ">=",
                                                                                   "value": 0}})
    assert status == 201, segment
    status, campaign, _ = api.post("/api/campaigns", {"name": "Hello", "segment_id": segment["id"],
                                                      "message": message})
    assert status == 202, campaign
    return campaign


def test_each_recipient_gets_their_own_attributes_in_one_pass(api, db, consumers):
    _ingest(api, consumers, [
        {"name": "Asha Rao", "email": "asha@example.com",
         "attributes": {"city": "Mumbai", "points": 3, "ratio": 2.5, "vip": True,
                        "since": "2026-01-02T08:34:05+05:30", "nickname": "{{name}} {{attributes.city}}"}},
        # A name that reads like a placeholder stays as it is; attributes this customer lacks are empty.
        {"name": "{{attributes.city}} Lee", "email": "lee@example.com", "attributes": {"vip": False}},
    ])
    campaign = _campaign(api, MESSAGE)
    consumers.drain(FANOUT)

    messages = {log["to"]["email"]: log["message"]
                for log in db.communication_logs.find({"campaign_id": ObjectId(campaign["id"])})}
    assert messages == {
        "asha@example.com": "Hi Asha (Asha Rao) from Mumbai: 3 points, ratio 2.5, vip true, "
                            "since 2026-01-02T03:04:05.000Z, aka {{name}} {{attributes.city}}. "
                            "{{attributes.City}} {{foo}} {{attributes.}}",
        "lee@example.com": "Hi {{attributes.city}} ({{attributes.city}} Lee) from :  points, ratio , vip false, "
                           "since , aka . {{attributes.City}} {{foo}} {{attributes.}}",
    }


class FindSpy(monitoring.CommandListener):
    def __init__(self):
        self.projections: list[dict] = []

    def started(self, event):
        if event.command_name == "find" and event.command.get("find") == "customers":
            self.projections.append(dict(event.command.get("projection") or {}))

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


def test_the_fan_out_reads_only_the_attributes_the_message_names(api, db, consumers):
    _ingest(api, consumers, [{"name": "Asha Rao", "email": "asha@example.com",
                              "attributes": {"city": "Pune", "vip": True, "notes": "x" * 200}}])
    spy = FindSpy()
    host, port = db.client.address
    spied = MongoClient(f"mongodb://{host}:{port}/", event_listeners=[spy], tz_aware=True)[db.name]
    named = _campaign(api, "{{attributes.city}}, {{attributes.city}}! Not {{attributes.Notes}}")
    plain = _campaign(api, "Hi {{name}}")

    for campaign in (named, plain):
        assert campaign_service.fan_out(spied, ObjectId(campaign["id"]), lambda *_: None, lambda: None, 60)

    assert spy.projections == [{"name": 1, "email": 1, "phone": 1, "attributes.city": 1},
                               {"name": 1, "email": 1, "phone": 1}]
    log = db.communication_logs.find_one({"campaign_id": ObjectId(named["id"])})
    assert log["message"] == "Pune, Pune! Not {{attributes.Notes}}"


def test_a_message_that_could_outgrow_the_vendor_once_its_attributes_are_filled_is_refused(api, db, segment_id):
    fits = "{{attributes.note}}" * 9 + "x" * (MAX_MESSAGE_LENGTH - 9 * 200)  # nine strings of up to 200 characters
    status, body, _ = api.post("/api/campaigns", {"name": "Fits", "segment_id": segment_id, "message": fits})
    assert status == 202, body
    status, body, _ = api.post("/api/campaigns", {"name": "Long", "segment_id": segment_id, "message": fits + "x"})
    assert status == 422
    assert_error(body, "validation_error", ["body", "message"])
    assert db.campaigns.count_documents({}) == 1


def test_attribute_values_read_as_text_within_the_bounds_the_creation_check_counts_on():
    texts = {value: campaign_service.attribute_text(value) for value in (
        1e15, -1e15, 4.0, -0.0, 2.5, 0.1 + 0.2, -123456789012345.67, -0.00012345678901234567,
        -1.2345678901234567e-300, 5e-324)}
    assert texts[1e15] == "1000000000000000" and texts[4.0] == "4" and texts[2.5] == "2.5"
    assert all(len(text) <= LONGEST_NUMBER_TEXT for text in texts.values()), texts
    latest = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)
    assert campaign_service.attribute_text(latest) == "9999-12-31T23:59:59.999Z"
    assert len(campaign_service.attribute_text(datetime(1, 1, 1))) == LONGEST_TIME_TEXT
    assert [campaign_service.attribute_text(v) for v in (True, False, None)] == ["true", "false", ""]
