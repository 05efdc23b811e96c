"""E-mail through the whole local system, as `CHANNEL=ses make run` runs it: the runner verifies the sender in moto's
SES, campaigns go out through it with their unsubscribe links on the runner's own URL, and `offline.ses_feedback`
answers for SES through the delivery-event queue until the campaign completes with SES's counts."""
from __future__ import annotations

import email
import json
import re
import time
from collections import Counter
from email import policy

import httpx
import pytest
from bson import ObjectId

from offline import services, ses_feedback
from offline.faults import Faults
from tests.conftest import signed_in_system
from tests.helpers import stats
from tests.offline.conftest import wait_for

SENDER = "Shop <news@shop.example.com>"
OPEN_DAY = "https://shop.example.com/open-day?from=mail"
CLICK_QUEUE = "ClickQueue"
READERS = [f"reader{i}@example.com" for i in range(8)]
# Seeded so that these eight readers have every fate: 3 bounce; of the 5 delivered, 2 complain, 3 open, 2 click.
SHARES = ses_feedback.Shares(bounce=0.2, complaint=0.2, open=0.5, click=0.3, seed="email")


@pytest.fixture
def email_system(stack_env, queues, db):
    """The offline runner with CHANNEL=ses over this test's database and queues; an admin's HTTP client on it."""
    port = services.free_port()
    # SES's own counts, clicks included: the CRM's tracked links are off (the fault test below has them on).
    env = {**stack_env, "CHANNEL": "ses", "SES_FROM_ADDRESS": SENDER, "PUBLIC_URL": f"http://localhost:{port}",
           "TRACK_CLICKS": "false"}
    assert services.prepare_local_ses(env) == SENDER
    with signed_in_system(env, queues, port) as http:
        yield http, env


def test_an_email_campaign_goes_out_through_ses_and_completes_with_what_ses_reports(email_system, db, sqs, queues,
                                                                                    tmp_path, capsys):
    http, env = email_system
    fates = {address: ses_feedback.fate(address, SHARES) for address in READERS}
    bounced = {a for a, kinds in fates.items() if "Bounce" in kinds}
    complained = {a for a, kinds in fates.items() if "Complaint" in kinds}
    assert bounced and complained and len(bounced) < len(READERS), "the readers cover every fate"

    assert http.post("/api/customers", json={"customers": [
        {"name": f"Reader {i}", "email": address} for i, address in enumerate(READERS)]}).status_code == 202
    wait_for(lambda: db.customers.count_documents({}) == len(READERS), 30, what="customers ingested")
    segment = http.post("/api/segments", json={"name": "Readers", "rules": {"field": "visits", "op": ">=",
                                                                            "value": 0}}).json()
    campaign = {"name": "Winter sale", "segment_id": segment["id"], "message": "Hi {{first_name}}: {{unsubscribe_url}}"}
    refused = http.post("/api/campaigns", json=campaign)
    assert refused.status_code == 422 and refused.json()["error"]["details"][0]["loc"] == ["body", "subject"]
    created = http.post("/api/campaigns", json={**campaign, "subject": "Winter sale, {{first_name}}"})
    assert created.status_code == 202, created.text
    campaign_id = ObjectId(created.json()["id"])

    # The sends reach moto's SES: one message per reader, from the sender, with their own one-click link.
    def sent_logs():
        # A log is marked sent, unconfirmed, while its message is handed to SES; then it has SES's id.
        logs = [log for log in db.communication_logs.find({"campaign_id": campaign_id})
                if log["vendor_message_id"] and not log["vendor_message_id"].startswith("unconfirmed:")]
        return logs if len(logs) == len(READERS) else None

    logs = wait_for(sent_logs, 40, interval=0.5, what="every e-mail sent")
    data = httpx.get(f"{env['SES_ENDPOINT_URL']}/moto-api/data.json").json()
    raw = {m["id"]: m for m in data["ses"]["RawMessage"]}
    for log in logs:
        mail = email.message_from_string(raw[log["vendor_message_id"]]["raw_data"], policy=policy.default)
        assert mail["From"] == SENDER and mail["To"].addresses[0].addr_spec == log["to"]["email"]
        assert mail["Subject"] == f"Winter sale, {log['to']['name'].split()[0]}"
        assert log["unsubscribe_url"].startswith(f"{env['PUBLIC_URL']}/u/")
        assert mail["List-Unsubscribe"] == f"<{log['unsubscribe_url']}>"
    # The link is served by the runner: the page, and the one-click POST a mailbox provider makes.
    leaving = next(a for a in READERS if a not in bounced | complained)
    link = httpx.URL(next(log["unsubscribe_url"] for log in logs if log["to"]["email"] == leaving)).path
    page = http.get(link)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert http.post(link, content=b"List-Unsubscribe=One-Click").status_code == 200

    # `python -m offline.ses_feedback`, finding the system as `make run` leaves it described.
    queue_url = queues[ses_feedback.DELIVERY_QUEUE].url
    (tmp_path / "running.json").write_text(json.dumps({
        "env": "development", "mongo_uri": env["MONGO_URI"], "mongo_db": env["MONGO_DB"],
        "sqs_endpoint_url": env["SQS_ENDPOINT_URL"], "ses_endpoint_url": env["SES_ENDPOINT_URL"],
        "ses_configuration_set": env["SES_CONFIGURATION_SET"], "queues": {ses_feedback.DELIVERY_QUEUE: queue_url}}))
    options = ["--bounce", "0.2", "--complaint", "0.2", "--open", "0.5", "--click", "0.3", "--seed", "email"]
    assert ses_feedback.main([*options, "--data-dir", str(tmp_path)]) == 0
    delivered = len(READERS) - len(bounced)
    expected = {"delivered": delivered, "bounced": len(bounced), "complained": len(complained),
                "opened": sum("Open" in kinds for kinds in fates.values()),
                "clicked": sum("Click" in kinds for kinds in fates.values())}
    printed = capsys.readouterr().out
    assert f"{len(READERS)} message(s) answered with {len(READERS) + sum(expected.values())} event(s)" in printed
    assert ", ".join(f"{count} {kind}" for kind, count in expected.items()) + "; 0 answered already" in printed

    deadline = time.monotonic() + 40
    while (detail := http.get(f"/api/campaigns/{campaign_id}").json())["status"] != "COMPLETED":
        assert time.monotonic() < deadline, detail["stats"]
        time.sleep(0.5)
    assert detail["stats"] == stats(audience=len(READERS), sent=delivered, failed=len(bounced), **expected)
    statuses = {log["to"]["email"]: (log["status"], log.get("reason"))
                for log in db.communication_logs.find({"campaign_id": campaign_id})}
    assert statuses == {a: ("FAILED", "bounced") if a in bounced else ("SENT", None) for a in READERS}
    suppressed = {s["email"]: s["reason"] for s in http.get("/api/suppressions").json()["items"]}
    assert suppressed == {**{a: "complained" for a in complained}, **{a: "bounced" for a in bounced},
                          leaving: "unsubscribed"}

    # Answered once: a second run finds every log settled, and puts nothing on the queue.
    again = ses_feedback.feedback(db, sqs, queue_url, ses_feedback.sent_mail(env["SES_ENDPOINT_URL"]), SHARES)
    assert again["answered"] == again["events"] == 0 and again["answered already"] == len(READERS)


def test_under_faults_no_reader_is_sent_twice_and_each_event_counted_once(stack_env, queues, db, sqs):
    """Fault mode on the whole e-mail path: SQS delivers send, event and click batches twice (at once and after),
    consumers are killed mid-batch, and SES's events are put on the queue again while earlier copies are still applied.
    The readers who click follow the tracked link of their e-mail through the runner (some twice), while SES's click
    events about them come too: each is counted once, by the CRM's own link.

    A sender killed before handing a message to SES leaves it claimed: the claim lapses, the reconciler queues it
    again, and after max_send_attempts claims it fails (send_failed), never sent. One killed once it was handed over
    leaves it sent, unconfirmed: never sent again, settled by its events (or, if SES never had it, by the reconciler
    at the receipt timeout: no_receipt)."""
    readers = [f"guest{i:02d}@example.com" for i in range(30)]
    shares = ses_feedback.Shares(bounce=0.2, complaint=0.2, open=0.5, click=0.3, seed="faults")
    fates = {address: ses_feedback.fate(address, shares) for address in readers}
    port = services.free_port()
    # A log marked sent whose message never reached SES (killed between the two) is settled at the receipt timeout,
    # which also bounds how long SES's events may take through the faults (the reconciler's next look, every 10 s
    # here, fails a log without them: two minutes, as at least the 60 s timeout and minute-long ticks gave); one
    # whose send a killed fan-out never queued (killed after its page committed) is sent at the send timeout.
    env = {**stack_env, "CHANNEL": "ses", "SES_FROM_ADDRESS": SENDER, "PUBLIC_URL": f"http://localhost:{port}",
           "RECEIPT_TIMEOUT_SECONDS": "120", "SEND_TIMEOUT_SECONDS": "60"}
    assert services.prepare_local_ses(env) == SENDER
    faults = Faults({"sqs_dup": 0.5, "sqs_kill": 0.4}, seed=14)
    # Schedules six times faster: the reconciler looks every 10 s, the roll-up ticks every 10 s.
    with signed_in_system(env, queues, port, faults, time_scale=6) as http:
        assert http.post("/api/customers", json={"customers": [
            {"name": f"Guest {i}", "email": address} for i, address in enumerate(readers)]}).status_code == 202
        wait_for(lambda: db.customers.count_documents({}) == len(readers), 120, what="customers ingested")
        segment = http.post("/api/segments", json={"name": "Guests", "rules": {"field": "visits", "op": ">=",
                                                                               "value": 0}}).json()
        created = http.post("/api/campaigns", json={"name": "Open day", "segment_id": segment["id"],
                                                    "subject": "Open day", "message": "Hi {{first_name}}: " + OPEN_DAY})
        assert created.status_code == 202, created.text
        campaign_id = ObjectId(created.json()["id"])
        queue_url = queues[ses_feedback.DELIVERY_QUEUE].url
        # A killed sender's claim lapses after about half a minute, and the reconciler looks every 10 s: three kills
        # of the same logs' sender (max_send_attempts) take a few minutes at most to settle.
        deadline = time.monotonic() + 600
        while (detail := http.get(f"/api/campaigns/{campaign_id}").json())["status"] != "COMPLETED":
            assert time.monotonic() < deadline, detail["stats"]
            # Events for every log sent and still waiting, again while the copies put before are still applied.
            ses_feedback.feedback(db, sqs, queue_url, ses_feedback.sent_mail(env["SES_ENDPOINT_URL"]), shares)
            time.sleep(3)
        clicks = _click_tracked_links(http, ses_feedback.sent_mail(env["SES_ENDPOINT_URL"]),
                                      {a for a in readers if "Click" in fates[a]})
        wait_for(lambda: _settled(sqs, queues) and _settled(sqs, queues, CLICK_QUEUE), 120, interval=0.5,
                 what="the delivery-event and click queues drained")
        wait_for(lambda: not db.communication_logs.count_documents({"campaign_id": campaign_id, "pending": True}), 30,
                 interval=0.5, what="the last tallies rolled up")
        detail = http.get(f"/api/campaigns/{campaign_id}").json()

    injected = faults.injected()
    assert injected["sqs_dup"] and injected["sqs_kill"], injected
    # moto's SES is shared by the session's tests: only this campaign's readers are counted.
    sent = ses_feedback.sent_mail(env["SES_ENDPOINT_URL"])
    per_reader = Counter(address for mail in sent if (address := mail.message["To"].addresses[0].addr_spec) in readers)
    assert set(per_reader.values()) <= {1}, per_reader
    logs = {log["to"]["email"]: log for log in db.communication_logs.find({"campaign_id": campaign_id})}
    assert set(logs) == set(readers)
    never_sent = set(readers) - set(per_reader)
    assert all(logs[a]["status"] == "FAILED" and logs[a]["reason"] in {"send_failed", "no_receipt"}
               for a in never_sent), {a: logs[a]["reason"] for a in never_sent}
    bounced = {address for address in per_reader if "Bounce" in fates[address]}
    assert {a: log["status"] for a, log in logs.items()} == {
        a: "FAILED" if a in bounced | never_sent else "SENT" for a in readers}
    counted = {name: sum(kind in fates[a] for a in per_reader) for kind, name in ses_feedback.COUNTED.items()}
    assert detail["stats"] == stats(audience=len(readers), sent=len(per_reader) - len(bounced),
                                    failed=len(bounced | never_sent), **counted)
    # Each click once: a recipient once in `clicked`, each of their clicks once on the link.
    assert counted["clicked"] == len(clicks) >= 2 and sum(clicks.values()) > len(clicks), clicks
    assert db.campaigns.find_one({"_id": campaign_id})["link_stats"] == {
        "0": {"clicks": sum(clicks.values()), "recipients": len(clicks)}}
    for address, times in clicks.items():
        assert len(logs[address]["click_ids"]) == times and logs[address]["events"]["clicked"]


def _click_tracked_links(http: httpx.Client, sent: list[ses_feedback.SentMail], clicking: set[str]) -> dict[str, int]:
    """Each clicking reader follows the tracked link of their e-mail (every other one twice); how often each did."""
    clicks = {}
    for mail in sent:
        address = mail.message["To"].addresses[0].addr_spec
        if address not in clicking or address in clicks:
            continue
        text = mail.message.get_body(("plain",)).get_content()
        [link] = re.findall(r"http://localhost:\d+/c/[A-Za-z0-9_-]+", text)
        assert OPEN_DAY not in text, "the link is sent tracked"
        clicks[address] = 1 + len(clicks) % 2
        for _ in range(clicks[address]):
            followed = http.get(httpx.URL(link).path)
            assert followed.status_code == 302 and followed.headers["location"] == OPEN_DAY, followed.text
    return clicks


def _settled(sqs, queues, queue: str = ses_feedback.DELIVERY_QUEUE) -> bool:
    url = queues[queue].url
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return attributes == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}


def test_ses_feedback_is_for_a_local_development_system_only(tmp_path, monkeypatch, capsys):
    for key in ("ENV", "MONGO_URI", "SQS_ENDPOINT_URL", "SES_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    assert ses_feedback.main(["--data-dir", str(tmp_path)]) == 2
    assert "no local system found" in capsys.readouterr().err
    running = {"env": "development", "mongo_uri": "mongodb://127.0.0.1:1/", "sqs_endpoint_url": "http://127.0.0.1:1"}
    (tmp_path / "running.json").write_text(json.dumps({**running, "env": "production"}))
    assert ses_feedback.main(["--data-dir", str(tmp_path)]) == 2
    assert "refused: ENV is production" in capsys.readouterr().err
    (tmp_path / "running.json").write_text(json.dumps(running))
    monkeypatch.setenv("ENV", "production")
    assert ses_feedback.main(["--data-dir", str(tmp_path)]) == 2
    assert "refused" in capsys.readouterr().err


def test_a_send_whose_answer_was_lost_is_answered_by_its_link_and_subject(db, consumers, sqs, queues):
    from crm.channels.ses import raw_message

    campaign_id, log_id = ObjectId(), ObjectId()
    link = f"http://localhost:4000/u/{'a' * 38}"
    db.campaigns.insert_one({"_id": campaign_id, "name": "Sale", "status": "SENDING", "fanout": {"done": True},
                             "stats": {"audience": 1, "queued": 1, "sent": 0, "failed": 0, "skipped": 0}})
    db.communication_logs.insert_one({
        "_id": log_id, "campaign_id": campaign_id, "status": "QUEUED", "vendor_message_id": f"unconfirmed:{log_id}",
        "subject": "Sale, Ada", "unsubscribe_url": link, "to": {"name": "Ada", "email": "ada@example.com"}})
    message = {"log_id": str(log_id), "to": {"name": "Ada", "email": "ada@example.com"}, "message": "Hi",
               "subject": "Sale, Ada", "unsubscribe_url": link}
    lost = ses_feedback.SentMail.from_moto({"id": "0100-lost-answer", "source": SENDER,
                                            "raw_data": raw_message(SENDER, message).decode()})
    other = ses_feedback.SentMail.from_moto({"id": "0100-someone-else", "source": SENDER, "raw_data": raw_message(
        SENDER, {**message, "subject": "Another campaign"}).decode()})
    delivered = ses_feedback.Shares(bounce=0, complaint=0, open=0, click=0)
    done = ses_feedback.feedback(db, sqs, queues[ses_feedback.DELIVERY_QUEUE].url, [lost, other], delivered)
    assert (done["answered"], done["unknown"], done["events"]) == (1, 1, 2)

    consumers.drain(ses_feedback.DELIVERY_QUEUE)
    log = db.communication_logs.find_one({"_id": log_id})
    assert (log["status"], log["vendor_message_id"]) == ("SENT", "0100-lost-answer")
    assert db.campaigns.find_one({"_id": campaign_id})["stats"]["delivered"] == 1
