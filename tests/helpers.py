"""Small assertions shared by the tests."""
from __future__ import annotations

import json
from typing import Any

from pymongo import monitoring


def assert_error(body: Any, code: str, loc_prefix: list | None = None) -> None:
    """The API.md error envelope, and (for validation errors) a detail naming the bad field."""
    assert set(body) >= {"error"}, body
    error = body["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], list)
    if loc_prefix is not None:
        locs = [d["loc"] for d in error["details"]]
        assert any(loc[: len(loc_prefix)] == loc_prefix for loc in locs), (loc_prefix, locs)


def uses_index(plan: dict[str, Any]) -> bool:
    return "IXSCAN" in json.dumps(plan) and "COLLSCAN" not in json.dumps(plan)


def token_for(api, email: str, role: str) -> str:
    """A development token of a user with this role (created or re-roled)."""
    status, body, _ = api.post("/api/auth/dev-token", {"email": email, "role": role}, token="")
    assert status == 200, body
    return body["token"]


def new_key(api, *scopes: str, name: str = "shop") -> dict[str, Any]:
    """An API key created by the api fixture's admin; its reply, with the secret under "key"."""
    status, body, _ = api.post("/api/api-keys", {"name": name, "scopes": list(scopes)})
    assert status == 201, body
    return body


def stats(**counts: float) -> dict:
    """A campaign's stats as API.md lists them (v3: unsubscribed, converted, revenue): these counts, every other 0."""
    return {key: counts.get(key, 0) for key in ("audience", "queued", "sent", "failed", "skipped", "delivered",
                                                "bounced", "complained", "opened", "clicked", "unsubscribed",
                                                "converted", "revenue")}


class FindReplies(monitoring.CommandListener):
    """The documents the server's find (and getMore) replies carried to a client."""

    def __init__(self) -> None:
        self.documents: list[dict] = []

    def started(self, event) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if event.command_name in ("find", "getMore"):
            cursor = event.reply["cursor"]
            self.documents += cursor.get("firstBatch", cursor.get("nextBatch", []))

    def failed(self, event) -> None:
        pass
