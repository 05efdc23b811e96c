"""Erasing a customer: nothing of the person remains in any collection but the hash of their address on the
suppression list; a re-import of the same address is SKIPPED; many logs are finished by the reconciler."""
from __future__ import annotations

import json

from bson import ObjectId, json_util

from crm.consent import erasure
from tests.helpers import token_for

FANOUT, SEND = "CampaignFanoutQueue", "CampaignSendQueue"
PERSON = {"name": "Zadie Quill", "email": "zadie.quill@example.com", "phone": "+15550001234",
          "attributes": {"city": "Pune", "nickname": "zq-the-unique"}, "tags": ["vip"]}


def _ingest(api, consumers, *customers) -> None:
    assert api.post("/api/customers", {"customers": list(customers)})[0] == 202
    consumers.drain("CustomerIngestQueue")


def _campaign(api, consumers, vendor_sends: bool = True) -> str:
    _, segment, _ = api.post("/api/segments", {"name": "All", "rules": {"field": "visits", "op": ">=", "value": 0}})
    _, campaign, _ = api.post("/api/campaigns", {"name": "Hi", "segment_id": segment["id"],
                                                 "message": "Hi {{name}} ({{attributes.nickname}})"})
    consumers.drain(FANOUT)
    if vendor_sends:
        consumers.drain(SEND)
    return campaign["id"]


def _everything(db) -> str:
    return "\n".join(json.dumps(doc, default=json_util.default) for name in db.list_collection_names()
                     for doc in db[name].find({}))


def test_nothing_of_the_person_remains_but_the_hash_of_their_address(api, db, consumers, vendor):
    _ingest(api, consumers, PERSON, {"name": "Other", "email": "other@example.com", "attributes": {"city": "Pune"}})
    person = db.customers.find_one({"email": PERSON["email"]})
    api.post("/api/orders", {"order_id": "o-1", "customer_email": PERSON["email"], "amount": 10,
                             "items": [{"sku": "TEA-01", "name": "Tea", "qty": 1, "price": 10}]})
    consumers.drain("OrderIngestQueue")
    _campaign(api, consumers)
    api.post("/api/suppressions", {"email": PERSON["email"], "reason": "manual"})
    assert "zq-the-unique" in _everything(db) and PERSON["email"] in _everything(db)

    status, body, _ = api.request("DELETE", f"/api/customers/{person['_id']}")
    assert status == 204, body
    everything = _everything(db)
    for trace in (PERSON["name"], "Zadie", PERSON["email"], PERSON["phone"], "zq-the-unique"):
        assert trace not in everything, trace
    [suppressed] = db.suppressions.find({"reason": "erased"})
    assert suppressed["email"] is None and suppressed["email_hash"]
    assert db.communication_logs.count_documents({"customer_id": person["_id"], "erased": True}) == 1
    assert db.attribute_registry.find_one({"_id": "city"})["values"] == ["Pune"], "others' values stay"
    assert db.audit_log.count_documents({"action": "customer.erase", "target.id": str(person["_id"])}) == 1
    assert db.erasures.count_documents({}) == 0
    assert api.request("DELETE", f"/api/customers/{person['_id']}")[0] == 404


def test_a_reimport_of_an_erased_address_is_skipped(api, db, consumers, vendor):
    _ingest(api, consumers, PERSON)
    person = db.customers.find_one({"email": PERSON["email"]})
    assert api.request("DELETE", f"/api/customers/{person['_id']}")[0] == 204
    _ingest(api, consumers, PERSON)
    campaign_id = _campaign(api, consumers)
    [log] = db.communication_logs.find({"campaign_id": ObjectId(campaign_id)})
    assert (log["status"], log["reason"]) == ("SKIPPED", "erased")
    assert not any(PERSON["email"] == m["to"]["email"] for call in vendor.received for m in call["messages"])


def test_a_person_with_many_logs_is_finished_by_the_reconciler(api, db, consumers, monkeypatch):
    import time

    _ingest(api, consumers, PERSON)
    for _ in range(5):
        _campaign(api, consumers, vendor_sends=False)
    person = db.customers.find_one({"email": PERSON["email"]})
    monkeypatch.setattr(erasure, "LOGS_IN_REQUEST", 2)
    assert api.request("DELETE", f"/api/customers/{person['_id']}")[0] == 204
    assert db.communication_logs.count_documents({"customer_id": person["_id"], "erased": {"$ne": True}}) == 3
    assert api.request("DELETE", f"/api/customers/{person['_id']}")[0] == 204, "a retry while it finishes"
    monkeypatch.setattr(erasure, "LOGS_PER_PAGE", 2)
    assert erasure.finish_pending(db, time.time() + 30) == 1
    assert db.communication_logs.count_documents({"customer_id": person["_id"], "erased": {"$ne": True}}) == 0
    assert db.erasures.count_documents({}) == 0


def test_only_an_admin_may_erase_and_an_unknown_id_is_404(api, db, consumers):
    _ingest(api, consumers, PERSON)
    person = db.customers.find_one({"email": PERSON["email"]})
    marketer = token_for(api, "m@example.com", "marketer")
    status, body, _ = api.request("DELETE", f"/api/customers/{person['_id']}", token=marketer)
    assert status == 403 and db.customers.count_documents({}) == 1
    assert api.request("DELETE", f"/api/customers/{ObjectId()}")[0] == 404
    assert api.request("DELETE", "/api/customers/not-an-id")[0] in (404, 422)


def test_a_blanked_log_whose_send_was_lost_is_skipped_not_failed(api, db, consumers):
    from datetime import timedelta

    from crm.models.common import utcnow
    from crm.services.reconcile import Limits, reconcile

    _ingest(api, consumers, PERSON)
    _campaign(api, consumers, vendor_sends=False)
    consumers.messages(SEND)  # the send message is lost
    person = db.customers.find_one({"email": PERSON["email"]})
    assert api.request("DELETE", f"/api/customers/{person['_id']}")[0] == 204
    sends: list = []
    limits = Limits(timedelta(hours=1), timedelta(minutes=15), 3, timedelta(minutes=5))
    reconcile(db, utcnow() + timedelta(hours=2), limits, lambda _: None, sends.extend, [].append, 1e12)
    [log] = db.communication_logs.find({})
    assert (log["status"], log["reason"]) == ("SKIPPED", "erased") and sends == []


def test_an_ingest_accepted_before_the_erasure_brings_no_one_back_and_a_new_one_does(api, db, consumers):
    _ingest(api, consumers, PERSON)
    person = db.customers.find_one({"email": PERSON["email"]})
    api.post("/api/customers", PERSON)  # accepted, still in the queue
    late = consumers.messages("CustomerIngestQueue")
    assert api.request("DELETE", f"/api/customers/{person['_id']}")[0] == 204
    consumers.deliver("CustomerIngestQueue", [m["Body"] for m in late])
    assert db.customers.count_documents({}) == 0, "an older ingest does not bring the person back"
    _ingest(api, consumers, PERSON)
    assert db.customers.count_documents({}) == 1, "a new import does (and is never messaged)"


def test_every_kind_of_value_only_the_person_had_leaves_the_registry(api, db, consumers):
    _ingest(api, consumers, {**PERSON, "attributes": {"nickname": "zq-the-unique", "birthday": "1990-01-02T00:00:00Z",
                                                       "lucky": 987654321, "city": "Pune"}},
            {"name": "Other", "email": "other@example.com", "attributes": {"city": "Pune", "lucky": 7}})
    person = db.customers.find_one({"email": PERSON["email"]})
    assert api.request("DELETE", f"/api/customers/{person['_id']}")[0] == 204
    _, body, _ = api.get("/api/customers/attributes")
    shown = json.dumps(body)
    for trace in ("zq-the-unique", "1990-01-02", "987654321"):
        assert trace not in shown, trace
    assert "Pune" in shown


def _receipt(api, env, consumers, log: dict, status: str, reason: str) -> None:
    import time

    from crm import signing

    raw = json.dumps({"vendor_message_id": log["vendor_message_id"], "log_id": str(log["_id"]), "status": status,
                      "timestamp": "2026-11-25T10:00:00Z", "reason": reason}).encode()
    timestamp = str(int(time.time()))
    signature = signing.sign(env["WEBHOOK_SECRET"], timestamp, raw)
    headers = {"X-Vendor-Timestamp": timestamp, "X-Vendor-Signature": signature}
    assert api.post("/api/delivery-receipt", raw=raw, token="", headers=headers)[0] == 202
    consumers.drain("DeliveryReceiptQueue")


def _bounce(person: dict) -> str:
    return f"550 5.1.1 <{person['email']}>: Recipient address rejected: {person['name']} is unknown"


def test_a_vendors_reason_quoting_the_address_leaves_with_the_person_and_is_not_kept_when_it_comes_late(
        api, db, env, consumers, vendor):
    """Review finding: a receipt's free-text reason (bounce texts quote the address) stayed on the erased person's
    log."""
    other = {"name": "Other", "email": "other@example.com"}
    _ingest(api, consumers, PERSON, other)
    first, second = _campaign(api, consumers), _campaign(api, consumers)
    logs = {(str(log["campaign_id"]), log["to"]["email"]): log for log in db.communication_logs.find({})}
    _receipt(api, env, consumers, logs[first, PERSON["email"]], "FAILED", _bounce(PERSON))
    _receipt(api, env, consumers, logs[first, other["email"]], "FAILED", _bounce(other))
    assert PERSON["email"] in _everything(db)
    person = db.customers.find_one({"email": PERSON["email"]})

    assert api.request("DELETE", f"/api/customers/{person['_id']}")[0] == 204
    # The second campaign's receipt comes after the erasure blanked its log.
    _receipt(api, env, consumers, logs[second, PERSON["email"]], "FAILED", _bounce(PERSON))
    everything = _everything(db)
    for trace in (PERSON["email"], "zadie.quill", "Zadie", "Quill"):
        assert trace not in everything, trace
    for campaign_id in (first, second):
        log = db.communication_logs.find_one({"_id": logs[campaign_id, PERSON["email"]]["_id"]})
        assert (log["status"], log["reason"], log["erased"]) == ("FAILED", None, True)
    _, detail, _ = api.get(f"/api/campaigns/{first}")
    assert detail["stats"]["failed"] == 2, "the erased person's failure still counts"
    kept = db.communication_logs.find_one({"_id": logs[first, other["email"]]["_id"]})
    assert kept["reason"] == _bounce(other), "another person's log keeps its reason"


def test_an_erasure_committing_between_the_ingests_check_and_its_write_brings_no_one_back(api, db, consumers,
                                                                                           monkeypatch):
    """Review finding: the ingest consumer read erased_at and upserted later, outside a transaction, so an erasure
    committing in between let an older record bring the person back."""
    from crm.services import customers

    _ingest(api, consumers, PERSON)
    person = db.customers.find_one({"email": PERSON["email"]})
    assert api.post("/api/customers", {**PERSON, "name": "Zadie Q."})[0] == 202  # accepted before the erasure
    erasures: list[int] = []
    upsert_op = customers._upsert_op

    def erased_meanwhile(*args, **kwargs):
        """Called after the erasure check and before the write: the erasure commits right there, once."""
        if not erasures:
            erasures.append(api.request("DELETE", f"/api/customers/{person['_id']}")[0])
        return upsert_op(*args, **kwargs)

    monkeypatch.setattr(customers, "_upsert_op", erased_meanwhile)
    consumers.drain("CustomerIngestQueue")
    assert erasures == [204]
    assert db.customers.count_documents({}) == 0, "the older record does not bring the person back"
    assert "Zadie" not in _everything(db)


def _older_record_racing_a_new_customers_erasure(api, db, consumers, monkeypatch) -> list[str]:
    """An older record of an address no customer has yet; between its check and its write, another consumer makes
    the customer from a newer record and an admin erases them. The late message's bodies."""
    from crm.models.common import to_iso, utcnow
    from crm.services import customers

    assert api.post("/api/customers", PERSON)[0] == 202
    late = [m["Body"] for m in consumers.messages("CustomerIngestQueue")]
    upsert_op, raced = customers._upsert_op, []

    def made_and_erased_meanwhile(*args, **kwargs):
        if not raced:
            raced.append(True)
            customers.upsert_customers(db, [{**PERSON, "accepted_at": to_iso(utcnow())}])
            person = db.customers.find_one({"email": PERSON["email"]})
            assert api.request("DELETE", f"/api/customers/{person['_id']}")[0] == 204
        return upsert_op(*args, **kwargs)

    monkeypatch.setattr(customers, "_upsert_op", made_and_erased_meanwhile)
    return late


def test_an_older_record_racing_a_new_customers_erasure_leaves_no_one_behind(api, db, consumers, monkeypatch):
    late = _older_record_racing_a_new_customers_erasure(api, db, consumers, monkeypatch)
    assert consumers.deliver("CustomerIngestQueue", late) == {"batchItemFailures": []}
    assert db.customers.count_documents({}) == 0
    assert "Zadie" not in _everything(db) and "zq-the-unique" not in _everything(db)


def test_a_consumer_dying_after_such_a_write_leaves_the_person_to_its_redelivery(api, db, consumers, monkeypatch):
    from crm.consent import suppressions

    late = _older_record_racing_a_new_customers_erasure(api, db, consumers, monkeypatch)
    erased_at, calls = suppressions.erased_at, []

    def dies_at_the_check_after_the_write(*args, **kwargs):
        calls.append(True)
        # The late record's check, the newer record's two (inside the race), then the late record's after its write.
        if len(calls) == 4:
            raise RuntimeError("killed at the function's timeout")
        return erased_at(*args, **kwargs)

    monkeypatch.setattr(suppressions, "erased_at", dies_at_the_check_after_the_write)
    assert consumers.deliver("CustomerIngestQueue", late)["batchItemFailures"]
    assert db.customers.count_documents({}) == 1, "brought back until the message comes again"
    assert consumers.deliver("CustomerIngestQueue", late) == {"batchItemFailures": []}
    assert db.customers.count_documents({}) == 0
    assert "Zadie" not in _everything(db)


def test_an_admins_reason_quoting_the_person_leaves_the_audit_trail_with_them(api, db, consumers):
    """Review finding: the reason an admin gave for lifting the person's opt-out ("Ada Lovelace (ada@example.com)
    phoned...") stayed on the audit trail after the erasure, the only place that still named her."""
    _ingest(api, consumers, {"name": "Ada Lovelace", "email": "ada@example.com"})
    assert api.post("/api/suppressions", {"email": "ada@example.com", "reason": "unsubscribed"})[0] == 201
    said = "Ada Lovelace (ada@example.com) phoned to opt in again"
    assert api.request("DELETE", "/api/suppressions/ada@example.com", {"reason": said})[0] == 204
    customer = db.customers.find_one({"email": "ada@example.com"})
    assert api.request("DELETE", f"/api/customers/{customer['_id']}")[0] == 204
    assert "Ada" not in _everything(db) and "ada@example.com" not in _everything(db)
    [entry] = db.audit_log.find({"action": "suppression.delete"})
    assert entry["details"] == {"removed": "unsubscribed"}, "what was done stays; the free text goes"
