"""Development only: what SES would report about the e-mails it was given, for a local run with CHANNEL=ses.

Reads what moto's SES has sent (`GET /moto-api/data.json`) and puts on the local delivery-event queue the events SES
would publish about each message through the stack's EventBridge rule (one EventBridge event per SQS message, the
shapes of events/ses/*.json): Send, then Delivery for most and a permanent Bounce for a few; a Complaint, an Open
and a Click for some of those delivered. Each address's fate is a hash of it (and of --seed), so it is the same on
every run; the shares are options. A reader who clicks an e-mail whose links the CRM tracks (TRACK_CLICKS) follows
its first tracked link through the running system, as a person would (SES publishes no click events then).

    python -m offline.ses_feedback [--bounce 0.05] [--complaint 0.02] [--open 0.3] [--click 0.1] [--seed S]

It finds the running `python -m offline` (`make run`) through .local/running.json; MONGO_URI, MONGO_DB,
SQS_ENDPOINT_URL and SES_ENDPOINT_URL override what that file says. A message is answered only while its log waits
for an outcome (QUEUED): running it again answers only what was sent since, or what the consumer has not applied
yet (a repeated event changes nothing). A message is found by its log's vendor_message_id (SES's message id), or,
for a send whose answer was lost (vendor_message_id `unconfirmed:...`), by its List-Unsubscribe link and subject.
"""
from __future__ import annotations

import argparse
import copy
import email
import hashlib
import json
import os
import re
import sys
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from email import policy
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Iterable

import boto3
import httpx

from offline import template
from offline.template import ACCOUNT_ID, STACK_NAME

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "events" / "ses"
DELIVERY_QUEUE = "DeliveryEventQueue"
TRACKED_LINK = re.compile(r"https?://[^\s\"'<>]+/c/[A-Za-z0-9_-]+")
REGION = "us-east-1"
# The fixture each kind of event is made from.
TEMPLATES = {"Send": "send.json", "Delivery": "delivery.json", "Bounce": "bounce_permanent.json",
             "Complaint": "complaint.json", "Open": "open.json", "Click": "click.json"}
COUNTED = {"Delivery": "delivered", "Bounce": "bounced", "Complaint": "complained", "Open": "opened",
           "Click": "clicked"}
UNCONFIRMED = "unconfirmed:"  # crm.channels.UNCONFIRMED: a send made with no answer from SES
LOOKUP_CHUNK = 500
SQS_BATCH = 10


@dataclass(frozen=True)
class Shares:
    """What share of addresses bounce (permanently); of those delivered, what share complain, open and click."""
    bounce: float = 0.05
    complaint: float = 0.02
    open: float = 0.3
    click: float = 0.1
    seed: str = "mini-crm"


def _draw(seed: str, kind: str, address: str) -> float:
    """A number in [0, 1) that is the same for the same seed, kind and address."""
    digest = hashlib.sha256(f"{seed}:{kind}:{address.strip().lower()}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


def fate(address: str, shares: Shares) -> list[str]:
    """The kinds of event SES reports about a message to this address, in the order it would report them."""
    if _draw(shares.seed, "bounce", address) < shares.bounce:
        return ["Send", "Bounce"]
    kinds = ["Send", "Delivery"]
    kinds += [kind for kind, share in (("Complaint", shares.complaint), ("Open", shares.open),
                                       ("Click", shares.click))
              if _draw(shares.seed, kind.lower(), address) < share]
    return kinds


@dataclass(frozen=True)
class SentMail:
    """One message moto's SES accepted."""
    message_id: str
    source: str
    message: EmailMessage

    @classmethod
    def from_moto(cls, item: dict[str, Any]) -> SentMail:
        return cls(item["id"], item.get("source") or "",
                   email.message_from_string(item["raw_data"], policy=policy.default))  # type: ignore[arg-type]

    @property
    def tracked_link(self) -> str | None:
        """The first link of the message that the CRM tracks (its /c/ redirect), if any."""
        body = self.message.get_body(preferencelist=("plain", "html"))
        found = TRACKED_LINK.search(body.get_content() if body is not None else "")
        return found.group(0) if found else None

    @property
    def unsubscribe_url(self) -> str | None:
        value = self.message.get("List-Unsubscribe")
        return str(value).strip().strip("<>") if value else None


def sent_mail(ses_endpoint_url: str) -> list[SentMail]:
    """Every message moto's SES has accepted since it started."""
    reply = httpx.get(f"{ses_endpoint_url.rstrip('/')}/moto-api/data.json", timeout=30)
    reply.raise_for_status()
    return [SentMail.from_moto(item) for item in reply.json().get("ses", {}).get("RawMessage", [])]


def _stamp(at: datetime, milliseconds: bool = True) -> str:
    """SES's times: 2026-11-26T10:00:05.000Z in an event's detail, 2026-11-26T10:00:05Z in its envelope."""
    at = at.astimezone(timezone.utc) if at.tzinfo else at.replace(tzinfo=timezone.utc)
    if not milliseconds:
        return at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def ses_event(kind: str, mail: SentMail, log_id: str, address: str, configuration_set: str,
              at: datetime, sent_at: datetime | None = None) -> dict[str, Any]:
    """The EventBridge event SES publishes about one message: the fixture of its kind, filled in."""
    event = copy.deepcopy(_fixture(kind))
    domain = parseaddr(mail.source)[1].rpartition("@")[2]
    stamp = _stamp(at)
    event.update({"id": str(uuid.uuid4()), "time": _stamp(at, milliseconds=False), "account": ACCOUNT_ID,
                  "region": REGION,
                  "resources": [f"arn:aws:ses:{REGION}:{ACCOUNT_ID}:configuration-set/{configuration_set}"]})
    detail = event["detail"]
    headers = mail.message
    detail["mail"].update({
        "timestamp": _stamp(sent_at or at), "source": mail.source, "messageId": mail.message_id,
        "sourceArn": f"arn:aws:ses:{REGION}:{ACCOUNT_ID}:identity/{domain}", "sendingAccountId": ACCOUNT_ID,
        "destination": [address],
        "headers": [{"name": name, "value": str(value)} for name, value in headers.items()],
        "commonHeaders": {"from": [str(headers["From"])], "to": [str(headers["To"])], "messageId": mail.message_id,
                          "subject": str(headers["Subject"] or "")},
    })
    detail["mail"]["tags"].update({"ses:configuration-set": [configuration_set], "ses:from-domain": [domain],
                                   "log_id": [log_id]})
    if kind == "Delivery":
        detail["delivery"].update({"timestamp": stamp, "recipients": [address]})
    elif kind == "Bounce":
        detail["bounce"].update({"timestamp": stamp, "feedbackId": f"local-bounce-{mail.message_id}"})
        detail["bounce"]["bouncedRecipients"][0]["emailAddress"] = address
    elif kind == "Complaint":
        detail["complaint"].update({"timestamp": stamp, "arrivalDate": stamp,
                                    "feedbackId": f"local-complaint-{mail.message_id}",
                                    "complainedRecipients": [{"emailAddress": address}]})
    elif kind == "Open":
        detail["open"]["timestamp"] = stamp
    elif kind == "Click":
        detail["click"]["timestamp"] = stamp
        if mail.unsubscribe_url:
            detail["click"]["link"] = mail.unsubscribe_url
    return event


_fixtures: dict[str, dict[str, Any]] = {}


def _fixture(kind: str) -> dict[str, Any]:
    if kind not in _fixtures:
        _fixtures[kind] = json.loads((FIXTURES / TEMPLATES[kind]).read_text())
    return _fixtures[kind]


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _logs_of(db, mails: list[SentMail]) -> tuple[dict[str, dict[str, Any]], list[SentMail]]:
    """The log of each message found by its SES message id, and the messages no log names."""
    from crm.db import LOGS

    fields = {"status": 1, "vendor_message_id": 1, "to.email": 1, "sent_at": 1}
    found: dict[str, dict[str, Any]] = {}
    for chunk in _chunks([m.message_id for m in mails], LOOKUP_CHUNK):
        for log in db[LOGS].find({"vendor_message_id": {"$in": chunk}}, fields):
            found[log["vendor_message_id"]] = log
    return found, [m for m in mails if m.message_id not in found]


def _unconfirmed_logs(db, mails: list[SentMail]) -> dict[str, dict[str, Any]]:
    """Logs sent without SES's answer, each matched to the one message that has its unsubscribe link and subject."""
    from crm.db import LOGS
    from crm.models.campaigns import QUEUED

    if not mails:
        return {}
    waiting: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for log in db[LOGS].find({"status": QUEUED, "vendor_message_id": {"$regex": f"^{UNCONFIRMED}"}},
                             {"status": 1, "to.email": 1, "sent_at": 1, "unsubscribe_url": 1, "subject": 1}):
        waiting.setdefault((log.get("unsubscribe_url") or "", log.get("subject") or ""), []).append(log)
    found = {}
    for mail in mails:
        candidates = waiting.get((mail.unsubscribe_url or "", str(mail.message["Subject"] or "")), [])
        if len(candidates) == 1:
            found[mail.message_id] = candidates[0]
    return found


def feedback(db, sqs, queue_url: str, mails: list[SentMail], shares: Shares = Shares(),
             configuration_set: str = f"{STACK_NAME}-email", now: datetime | None = None,
             follow_links: bool = False) -> Counter:
    """Puts the events of every message whose log still waits on the queue; returns what it did: answered
    (messages), events, and per kind (delivered, bounced, complained, opened, clicked), besides the messages skipped
    as answered already (their log has its outcome) or unknown (no log of this database names them). follow_links:
    a reader who clicks a message with a tracked link follows it (counted as followed) instead of SES's Click."""
    from crm.models.campaigns import QUEUED

    now = now or datetime.now(timezone.utc)
    done: Counter = Counter()
    logs, unnamed = _logs_of(db, mails)
    logs.update(_unconfirmed_logs(db, unnamed))
    events: list[dict[str, Any]] = []
    for mail in mails:
        log = logs.get(mail.message_id)
        if log is None:
            done["unknown"] += 1
            continue
        if log.get("status") != QUEUED:
            done["answered already"] += 1
            continue
        address = (log.get("to") or {}).get("email") or parseaddr(str(mail.message["To"]))[1]
        kinds = fate(address, shares)
        if follow_links and "Click" in kinds and mail.tracked_link:
            kinds = [kind for kind in kinds if kind != "Click"]
            done["followed"] += httpx.get(mail.tracked_link, follow_redirects=False, timeout=30).status_code == 302
        events += [ses_event(kind, mail, str(log["_id"]), address, configuration_set, now, log.get("sent_at"))
                   for kind in kinds]
        done["answered"] += 1
        done.update(COUNTED[kind] for kind in kinds if kind in COUNTED)
    for batch in _chunks(events, SQS_BATCH):
        reply = sqs.send_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(i), "MessageBody": json.dumps(event)} for i, event in enumerate(batch)])
        if reply.get("Failed"):
            raise RuntimeError(f"the delivery-event queue refused {len(reply['Failed'])} event(s): {reply['Failed']}")
    done["events"] = len(events)
    return done


def _share(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not a share between 0 and 1")
    return value


def _running(data_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((data_dir / "running.json").read_text())
    except (OSError, ValueError):
        return {}


def _shared_code_on_path() -> None:
    """The layers on sys.path, as the functions have them (for the log collection's name and statuses)."""
    try:
        import crm  # noqa: F401
    except ImportError:
        sys.path[:0] = [str(layer) for layer in template.load(ROOT / "template.yaml").layers]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m offline.ses_feedback", description=__doc__.splitlines()[0])
    defaults = Shares()
    parser.add_argument("--bounce", type=_share, default=defaults.bounce, help="share of addresses that bounce")
    parser.add_argument("--complaint", type=_share, default=defaults.complaint,
                        help="share of delivered addresses that complain")
    parser.add_argument("--open", type=_share, default=defaults.open, help="share of delivered addresses that open")
    parser.add_argument("--click", type=_share, default=defaults.click, help="share of delivered addresses that click")
    parser.add_argument("--seed", default=defaults.seed, help="another seed, other addresses bounce, complain, ...")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".local", help="where `make run` keeps its state")
    args = parser.parse_args(argv)
    running = _running(args.data_dir)
    stage = os.environ.get("ENV") or running.get("env") or "development"
    if stage.strip().lower() in ("production", "prod"):
        print(f"ses_feedback: refused: ENV is {stage}; this makes up SES events for local runs only", file=sys.stderr)
        return 2
    mongo_uri = os.environ.get("MONGO_URI") or running.get("mongo_uri")
    sqs_url = os.environ.get("SQS_ENDPOINT_URL") or running.get("sqs_endpoint_url")
    ses_url = os.environ.get("SES_ENDPOINT_URL") or running.get("ses_endpoint_url") or sqs_url
    if not (mongo_uri and sqs_url):
        print(f"ses_feedback: no local system found: start it with `CHANNEL=ses make run` (it writes "
              f"{args.data_dir / 'running.json'}), or set MONGO_URI and SQS_ENDPOINT_URL", file=sys.stderr)
        return 2
    _shared_code_on_path()
    import pymongo

    credentials = {"aws_access_key_id": os.environ.get("AWS_ACCESS_KEY_ID", "offline"),
                   "aws_secret_access_key": os.environ.get("AWS_SECRET_ACCESS_KEY", "offline")}
    sqs = boto3.client("sqs", endpoint_url=sqs_url, region_name=REGION, **credentials)
    queue_url = (running.get("queues") or {}).get(DELIVERY_QUEUE) if running.get("sqs_endpoint_url") == sqs_url \
        else None
    queue_url = queue_url or sqs.get_queue_url(QueueName=DELIVERY_QUEUE)["QueueUrl"]
    shares = Shares(args.bounce, args.complaint, args.open, args.click, args.seed)
    client = pymongo.MongoClient(mongo_uri)
    try:
        db = client[os.environ.get("MONGO_DB") or running.get("mongo_db") or "crm"]
        done = feedback(db, sqs, queue_url, sent_mail(ses_url), shares,
                        running.get("ses_configuration_set") or f"{STACK_NAME}-email", follow_links=True)
    finally:
        client.close()
    print(f"{done['answered']} message(s) answered with {done['events']} event(s) on {DELIVERY_QUEUE}: "
          + ", ".join(f"{done[counter]} {counter}" for counter in COUNTED.values())
          + f"; {done['answered already']} answered already, {done['unknown']} unknown to this database"
          + f"; {done['followed']} tracked link(s) followed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
