"""Test sends: a campaign's message (or each of its variants) handed to the channel at once, for CRM users only.

Nothing of a campaign is read or written: no log, no counter; the audit entry is the only trace in the database.
"""
from __future__ import annotations

from typing import Any

from bson import ObjectId
from pymongo.database import Database

from crm.access.audit import Auditor
from crm.channels import Accepted, Channel, ChannelUnavailable, Rejected
from crm.consent.links import PATH
from crm.db import CUSTOMERS, USERS, find_by_id
from crm.errors import DependencyUnavailable, InvalidInput
from crm.models.customers import MAX_NAME_LENGTH
from crm.services.campaigns import message_attribute_keys, personalise

# Who a test is personalised as without a customer: each attribute shows its own key, so the marketer sees where
# it lands.
SAMPLE_NAME = "Sample Customer"


def sample_link(public_url: str) -> str:
    """The unsubscribe link a test shows: where each recipient's own goes, naming no one. Never the customer's: the
    CRM user who gets the test (or their mail client's one-click button) would unsubscribe them. Unsigned, so the
    API function needs no unsubscribe secret; the page answers it 404."""
    return f"{public_url.rstrip('/')}{PATH}sample"


def recipients(db: Database, to: list[str]) -> list[dict[str, str]]:
    """The CRM users these addresses belong to, as the channel names a recipient; 422 naming each address that is
    no active user's, so the CRM never relays a message to a stranger."""
    users = {u["email"]: u for u in db[USERS].find({"email": {"$in": to}, "disabled": {"$ne": True}},
                                                   {"email": 1, "name": 1})}
    strangers = [{"loc": ["body", "to", i], "msg": "not the address of a CRM user"}
                 for i, address in enumerate(to) if address not in users]
    if strangers:
        raise InvalidInput("Invalid input: a test is sent only to CRM users", strangers)
    return [{"name": (users[a].get("name") or a)[:MAX_NAME_LENGTH], "email": a} for a in to]


def sample_of(db: Database, customer_id: str | None, drafts: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """The name and attributes a test is personalised with: the customer's (404 for an unknown one), or samples."""
    if customer_id is not None:
        customer = find_by_id(db[CUSTOMERS], customer_id, "customer")
        return customer["name"], customer.get("attributes") or {}
    keys = set().union(*(message_attribute_keys(text) for d in drafts for text in (d["message"], d["subject"] or "")))
    return SAMPLE_NAME, {key: f"[{key}]" for key in keys}


def send(audit: Auditor, channel: Channel, to: list[str], drafts: list[dict[str, Any]], customer_id: str | None,
         unsubscribe_link: str, deadline: float | None = None) -> list[dict[str, Any]]:
    """Every draft (the message, or each variant) to every address: at most 5 × 4 messages, in one channel call.
    Recorded in the audit trail before anything is handed over, so that no message leaves unrecorded."""
    people = recipients(audit.db, to)
    name, attributes = sample_of(audit.db, customer_id, drafts)
    # A fresh log id per message: the vendor's idempotency key, naming no communication log.
    messages = [{"log_id": str(ObjectId()), "to": person, "variant": draft["name"],
                 "message": personalise(draft["message"], name, attributes, unsubscribe_link),
                 "subject": personalise(draft["subject"], name, attributes, unsubscribe_link)
                 if draft["subject"] else None, "unsubscribe_url": unsubscribe_link}
                for person in people for draft in drafts]
    audit.write("campaign.test_send", "campaign", None, lambda session: None, to=to, customer_id=customer_id,
                variants=[d["name"] for d in drafts if d["name"]], message_ids=[m["log_id"] for m in messages])
    records = [{k: v for k, v in m.items() if k != "variant" and v is not None} for m in messages]
    try:
        # A channel that cannot tell a repeat from a new message asks before each one: a test has no claim to lose.
        outcomes = channel.send(records, deadline, None if channel.repeats_safely else lambda log_id: True)
    except ChannelUnavailable as exc:
        raise DependencyUnavailable("The channel is unavailable; nothing was sent") from exc
    _refuse_unsent(to, messages, outcomes)
    return [{"to": m["to"]["email"], "variant": m["variant"],
             "vendor_message_id": outcomes[m["log_id"]].vendor_message_id} for m in messages]


def _refuse_unsent(to: list[str], messages: list[dict[str, Any]], outcomes: dict[str, Any]) -> None:
    """A message the channel refused for good is a 422 naming its address (sending again fails the same way); one
    it did not take now (deferred, not reached) a 503. Either way the reply says what did go out."""
    unsent = [m for m in messages if not isinstance(outcomes.get(m["log_id"]), Accepted)]
    if not unsent:
        return
    went = f"{len(messages) - len(unsent)} of {len(messages)} message(s) were sent"
    refused = [m for m in unsent if isinstance(outcomes.get(m["log_id"]), Rejected)]
    if refused:
        raise InvalidInput(f"The channel refused the test ({went})", [
            {"loc": ["body", "to", to.index(m["to"]["email"])],
             "msg": f"refused{' (variant ' + m['variant'] + ')' if m['variant'] else ''}: "
                    f"{outcomes[m['log_id']].reason}"} for m in refused])
    raise DependencyUnavailable(f"The channel did not take the test now ({went}); try again later")
