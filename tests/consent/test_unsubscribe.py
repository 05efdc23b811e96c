"""The unsubscribe link: a page with one button, and the one-click POST a mailbox provider sends (RFC 8058): no
credentials, idempotent, 200 however often; a forged or broken token is a 404 page that says nothing more."""
from __future__ import annotations

import re

import pytest

from crm.consent.links import customer_of, token_for
from tests.meta.test_docs_in_browser import rendered_dom

ONE_CLICK = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture
def ada(api, consumers, db):
    api.post("/api/customers", {"name": "Ada", "email": "Ada@Example.com"})
    consumers.drain("CustomerIngestQueue")
    return db.customers.find_one({"email": "ada@example.com"})


def _token(customer_id) -> str:
    from crm.config import get_settings

    return token_for(get_settings().secret("unsubscribe_secret"), customer_id)


def test_one_click_unsubscribes_once_however_often_it_comes(api, db, ada):
    token = _token(ada["_id"])
    for _ in range(3):
        status, page, headers = api.request("POST", f"/u/{token}", raw=b"List-Unsubscribe=One-Click",
                                            headers=ONE_CLICK, token="")
        assert status == 200 and "unsubscribed" in page and headers["content-type"].startswith("text/html")
    assert [(s["email"], s["reason"]) for s in db.suppressions.find({})] == [("ada@example.com", "unsubscribed")]
    assert db.customers.find_one({"_id": ada["_id"]})["email_consent"] == "denied"
    [entry] = db.audit_log.find({"action": "suppression.create"})
    assert entry["actor"] == {"type": "recipient", "id": str(ada["_id"])}
    _, listed, _ = api.get("/api/customers?email=ada@example.com")
    assert listed["items"][0]["subscribed"] is False


@pytest.mark.parametrize("token", ["A" * 38, "x", "%00" * 10, "é" * 38])
def test_a_forged_or_broken_link_is_a_404_page_that_reveals_nothing(api, db, ada, token):
    forged = _token(ada["_id"])[:-2] + ("AA" if not _token(ada["_id"]).endswith("AA") else "BB")
    for bad in (token, forged):
        for method in ("GET", "POST"):
            status, page, _ = api.request(method, f"/u/{bad}", raw=b"", headers=ONE_CLICK, token="")
            assert status == 404 and "not valid" in page and "ada" not in page.lower()
    assert db.suppressions.count_documents({}) == 0


def test_a_link_of_an_erased_person_still_answers_200(api, db, ada):
    token = _token(ada["_id"])
    db.customers.delete_one({"_id": ada["_id"]})
    assert api.request("POST", f"/u/{token}", raw=b"", headers=ONE_CLICK, token="")[0] == 200


def test_tokens_name_one_customer_and_no_other_secret_makes_them():
    from bson import ObjectId

    first, second = ObjectId(), ObjectId()
    assert customer_of("s3cret", token_for("s3cret", first)) == first
    assert token_for("s3cret", first) != token_for("s3cret", second)
    assert customer_of("other", token_for("s3cret", first)) is None


def test_the_page_renders_in_a_browser_and_its_button_posts_the_unsubscribe(stack, db, tmp_path):
    from crm.models.common import to_iso, utcnow
    from crm.services.customers import upsert_customers

    http, runner = stack
    # Stored directly: the runner's own consumers read the ingest queue.
    upsert_customers(db, [{"name": "Ada", "email": "ada@example.com", "accepted_at": to_iso(utcnow())}])
    token = _token(db.customers.find_one({"email": "ada@example.com"})["_id"])
    dom = rendered_dom(f"http://127.0.0.1:{runner.port}/u/{token}", tmp_path / "profile")
    form = re.search(r'<form method="post" action="([^"]+)"><button type="submit">Unsubscribe</button></form>', dom)
    assert form, dom
    assert db.suppressions.count_documents({}) == 0, "showing the page changes nothing"
    # What the browser sends when the button is pressed: the form's method to the form's action.
    reply = http.post(form.group(1), content=b"", headers={"content-type": "application/x-www-form-urlencoded"})
    assert reply.status_code == 200 and "unsubscribed" in reply.text
    assert db.suppressions.find_one({})["reason"] == "unsubscribed"


def test_who_unsubscribes_while_a_campaign_is_sending_gets_nothing_after(api, db, consumers, vendor):
    api.post("/api/customers", {"customers": [{"name": f"P{i}", "email": f"p{i}@example.com"} for i in range(3)]})
    consumers.drain("CustomerIngestQueue")
    _, segment, _ = api.post("/api/segments", {"name": "All", "rules": {"field": "visits", "op": ">=", "value": 0}})
    _, campaign, _ = api.post("/api/campaigns", {"name": "Hi", "segment_id": segment["id"],
                                                 "message": "Hi {{name}}, leave: {{unsubscribe_url}}"})
    consumers.drain("CampaignFanoutQueue")
    # The campaign is sending (its logs written, their sends queued) when p1 clicks the link of an earlier e-mail.
    p1 = db.communication_logs.find_one({"to.email": "p1@example.com"})
    token = p1["unsubscribe_url"].rsplit("/", 1)[1]
    assert api.request("POST", f"/u/{token}", raw=b"List-Unsubscribe=One-Click", headers=ONE_CLICK, token="")[0] == 200
    consumers.drain("CampaignSendQueue")
    sent_to = {m["to"]["email"] for call in vendor.received for m in call["messages"]}
    assert sent_to == {"p0@example.com", "p2@example.com"}
    assert db.communication_logs.find_one({"_id": p1["_id"]})["reason"] == "unsubscribed"


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_every_page_is_sent_with_a_content_security_policy_and_no_framing(api, ada, method):
    """Review finding: the pages for people sent no Content-Security-Policy, framing or sniffing headers."""
    from crm.api.pages import page_headers

    for target in (f"/u/{_token(ada['_id'])}", "/u/forged", "/docs"):
        if method == "POST" and target == "/docs":
            continue
        _, page, headers = api.request(method, target, raw=b"", headers=ONE_CLICK, token="")
        policy = headers["content-security-policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy, target
        assert headers["x-frame-options"] == "DENY" and headers["referrer-policy"] == "no-referrer", target
        assert headers["x-content-type-options"] == "nosniff", target
        assert headers == {**headers, **{k.lower(): v for k, v in page_headers(page).items()}}, \
            "the page's own inline script and style are allowed by their hashes"


def test_an_ingest_accepted_before_the_unsubscribe_never_grants_consent_after_it(api, db, consumers, ada):
    """Review finding: the unsubscribe denied consent without the field's version, so an older ingest applied after
    it granted consent again."""
    assert api.post("/api/customers", {"name": "Ada", "email": "ada@example.com", "email_consent": "granted"})[0] == 202
    late = consumers.messages("CustomerIngestQueue")  # accepted, not yet applied
    token = _token(ada["_id"])
    assert api.request("POST", f"/u/{token}", raw=b"List-Unsubscribe=One-Click", headers=ONE_CLICK, token="")[0] == 200
    consumers.deliver("CustomerIngestQueue", [m["Body"] for m in late])
    consumers.deliver("CustomerIngestQueue", [m["Body"] for m in late])  # and its redelivery
    assert db.customers.find_one({"_id": ada["_id"]})["email_consent"] == "denied"
    _, listed, _ = api.get("/api/customers?email=ada@example.com")
    assert listed["items"][0]["subscribed"] is False

    # An ingest accepted after it is the shop's newer word on consent (the suppression still stops every message).
    assert api.post("/api/customers", {"name": "Ada", "email": "ada@example.com", "email_consent": "granted"})[0] == 202
    consumers.drain("CustomerIngestQueue")
    assert db.customers.find_one({"_id": ada["_id"]})["email_consent"] == "granted"
    assert db.suppressions.find_one({})["reason"] == "unsubscribed"


def test_a_second_unsubscribe_also_wins_over_the_ingests_accepted_before_it(api, db, consumers, ada):
    """Review finding: a second click changed nothing, so an ingest accepted between the two clicks and applied
    after the second granted consent again."""
    token = _token(ada["_id"])
    assert api.request("POST", f"/u/{token}", raw=b"List-Unsubscribe=One-Click", headers=ONE_CLICK, token="")[0] == 200
    assert api.post("/api/customers", {"name": "Ada", "email": "ada@example.com", "email_consent": "granted"})[0] == 202
    late = consumers.messages("CustomerIngestQueue")
    assert api.request("POST", f"/u/{token}", raw=b"List-Unsubscribe=One-Click", headers=ONE_CLICK, token="")[0] == 200
    consumers.deliver("CustomerIngestQueue", [m["Body"] for m in late])
    assert db.customers.find_one({"_id": ada["_id"]})["email_consent"] == "denied"
    assert db.audit_log.count_documents({"action": "suppression.create"}) == 1, "recorded once"


def test_an_ingest_accepted_the_millisecond_after_an_unsubscribe_is_newer():
    """Review finding: the unsubscribe's version equalled that of the next millisecond's first record, and a tie is
    not newer."""
    from datetime import timedelta

    from crm.models.common import utcnow
    from crm.models.customers import MAX_BATCH, ingest_version, version_after_ingests_until

    now = utcnow()
    assert ingest_version(now, MAX_BATCH - 1) <= version_after_ingests_until(now)
    assert ingest_version(now + timedelta(milliseconds=1), 0) > version_after_ingests_until(now)


@pytest.mark.parametrize("earlier", ["bounced", "manual"])
def test_an_unsubscribe_makes_an_earlier_entry_the_persons_own(api, db, consumers, ada, earlier):
    """An address suppressed for another reason first (a bounce, by hand) whose person then unsubscribes is theirs:
    a marketer clearing bounces must not lift an opt-out with it."""
    from tests.helpers import token_for as role_token

    assert api.post("/api/customers", {"name": "Ada", "email": "ada@example.com", "email_consent": "denied"})[0] == 202
    consumers.drain("CustomerIngestQueue")
    assert api.post("/api/suppressions", {"email": "ada@example.com", "reason": earlier})[0] == 201
    token = _token(ada["_id"])
    assert api.request("POST", f"/u/{token}", raw=b"List-Unsubscribe=One-Click", headers=ONE_CLICK, token="")[0] == 200
    assert db.suppressions.find_one({})["reason"] == "unsubscribed"
    marketer = role_token(api, "m@example.com", "marketer")
    assert api.request("DELETE", "/api/suppressions/ada@example.com", token=marketer)[0] == 403
    assert api.request("POST", f"/u/{token}", raw=b"", headers=ONE_CLICK, token="")[0] == 200
    assert db.audit_log.count_documents({"action": "suppression.create", "actor.type": "recipient"}) == 1
