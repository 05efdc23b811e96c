"""The container's MongoClient: one per URI, and a new one when the old has no member left to look at."""
from __future__ import annotations

from pymongo import MongoClient

from crm import db as crm_db
from crm.config import get_settings


class _NoMembers:
    """What a client's view of a replica set is after every member was taken out of it."""

    def server_descriptions(self) -> dict:
        return {}

    def has_writable_server(self) -> bool:
        return False


def test_a_client_whose_view_of_the_set_lost_every_member_is_replaced(env, monkeypatch):
    settings = get_settings()
    first = crm_db.get_client(settings)
    assert crm_db.get_client(settings) is first, "one client per container"
    first.admin.command("ping")
    # A restarted local server that first answered as another set leaves the client with no address at all
    # (seen in tests/test_faults.py: every request 503 until the container ended).
    real = MongoClient.topology_description
    monkeypatch.setattr(MongoClient, "topology_description",
                        property(lambda client: _NoMembers() if client is first else real.fget(client)))
    second = crm_db.get_client(settings)
    assert second is not first
    assert second.admin.command("ping")["ok"] == 1
    assert crm_db.get_client(settings) is second
