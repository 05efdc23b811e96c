"""Who is calling: a person (with one role) or a system's API key (with scopes)."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Role(str, Enum):
    ADMIN = "admin"
    MARKETER = "marketer"
    ANALYST = "analyst"


class Scope(str, Enum):
    CUSTOMERS_WRITE = "customers:write"
    CUSTOMERS_READ = "customers:read"
    ORDERS_WRITE = "orders:write"
    ORDERS_READ = "orders:read"


USER = "user"
API_KEY = "api_key"
# A message's recipient acting through their unsubscribe link (no credential: the link's signature).
RECIPIENT = "recipient"


@dataclass(frozen=True)
class Principal:
    type: str
    id: str
    email: str | None = None
    name: str | None = None
    role: Role | None = None
    scopes: frozenset[Scope] = field(default_factory=frozenset)

    @property
    def key(self) -> str:
        """What scopes this caller's idempotency keys: a person's e-mail (as before v2), or the API key's id."""
        return self.email if self.type == USER and self.email else f"{API_KEY}:{self.id}"

    def actor(self) -> dict[str, str]:
        """How the audit trail names this caller."""
        if self.type == USER:
            return {"type": USER, "id": self.id, "email": self.email or ""}
        return {"type": self.type, "id": self.id}
