"""Packing many records into SQS-sized messages."""
from __future__ import annotations

import json

import pytest

from crm.messages import pack, unpack


def test_pack_fills_messages_up_to_the_limit_and_keeps_every_record():
    records = [{"i": i, "name": "é" * 50} for i in range(1000)]
    bodies = pack("customers", records, 8 * 1024)
    assert len(bodies) > 1
    assert all(len(b.encode()) <= 8 * 1024 for b in bodies)
    # Not wasteful: every message but the last is more than half full.
    assert all(len(b.encode()) > 4 * 1024 for b in bodies[:-1])
    unpacked = [r for b in bodies for r in unpack(b)[1]]
    assert unpacked == records
    assert {unpack(b)[0] for b in bodies} == {"customers"}


def test_a_thousand_customers_fit_one_message():
    records = [{"name": f"Customer {i}", "email": f"customer{i}@example.com", "spend": 12.5, "visits": 3,
                "accepted_at": "2026-11-25T10:00:00.000Z"} for i in range(1000)]
    assert len(pack("customers", records, 256 * 1024)) == 1


def test_record_larger_than_a_message_is_refused():
    with pytest.raises(ValueError):
        pack("orders", [{"blob": "x" * 2000}], 1024)


@pytest.mark.parametrize("body", ["not json", "[]", json.dumps({"records": "nope"})])
def test_unpack_rejects_foreign_bodies(body):
    with pytest.raises(ValueError):
        unpack(body)
