"""Who may call a router's routes, declared next to the router; the README's permission table is made from these."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from crm.access.principals import API_KEY, USER, Principal, Role, Scope

EVERY_ROLE = frozenset(Role)
EDITORS = frozenset({Role.ADMIN, Role.MARKETER})
ADMINS = frozenset({Role.ADMIN})
NO_SCOPES: frozenset[Scope] = frozenset()
READ_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class Policy:
    """Reads are GET and routes marked `reads_only` (a preview, a summary): they change nothing. Writes are the rest.
    An API key reaches a route only through a scope its policy names."""

    read_roles: frozenset[Role]
    write_roles: frozenset[Role]
    read_scopes: frozenset[Scope] = NO_SCOPES
    write_scopes: frozenset[Scope] = NO_SCOPES

    def roles_for(self, reads: bool) -> frozenset[Role]:
        return self.read_roles if reads else self.write_roles

    def scopes_for(self, reads: bool) -> frozenset[Scope]:
        return self.read_scopes if reads else self.write_scopes

    def allows(self, principal: Principal, reads: bool) -> bool:
        if principal.type == USER:
            return principal.role in self.roles_for(reads)
        if principal.type == API_KEY:
            return bool(principal.scopes & self.scopes_for(reads))
        return False


def reads_only(endpoint: Callable) -> Callable:
    """Marks a POST that changes nothing (a preview, a summary): analysts may call it like a GET."""
    endpoint.reads_only = True  # type: ignore[attr-defined]
    return endpoint


def is_read(method: str, endpoint: Any) -> bool:
    return method.upper() in READ_METHODS or bool(getattr(endpoint, "reads_only", False))


def describe(roles: Iterable[Role], scopes: Iterable[Scope]) -> str:
    """`admin, marketer; keys: customers:write` — the same words in the README's table and the OpenAPI document."""
    named = ", ".join(role.value for role in sorted(roles, key=list(Role).index)) or "nobody"
    scope_names = ", ".join(scope.value for scope in sorted(scopes, key=list(Scope).index))
    return f"{named}; keys: {scope_names}" if scope_names else named
