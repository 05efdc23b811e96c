"""Shapes of API.md's "Users, API keys, audit"."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from crm.access.principals import Role, Scope
from crm.models.common import Email, InputModel, IsoTime


class Me(BaseModel):
    type: Literal["user", "api_key"]
    email: str | None = None
    name: str | None = None
    role: Role | None = None
    id: str | None = None
    scopes: list[Scope] | None = None


class UserIn(InputModel):
    email: Email
    role: Role
    name: str | None = Field(default=None, min_length=1, max_length=200)


class UserPatch(InputModel):
    role: Role | None = None
    disabled: bool | None = Field(default=None, strict=True)


class User(BaseModel):
    id: str
    email: str
    name: str | None
    role: Role
    disabled: bool
    created_at: IsoTime
    last_sign_in_at: IsoTime | None


class ApiKeyIn(InputModel):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[Scope] = Field(min_length=1, max_length=len(Scope))


class ApiKey(BaseModel):
    id: str
    name: str
    scopes: list[Scope]
    prefix: str
    created_by: str | None
    created_at: IsoTime
    last_used_at: IsoTime | None


class ApiKeyCreated(ApiKey):
    key: str = Field(description="The secret: shown in this reply only, stored as a hash")


class Actor(BaseModel):
    type: Literal["user", "api_key", "recipient"]
    id: str
    email: str | None = Field(default=None, description="A person's; a key has none",
                              exclude_if=lambda email: email is None)


class Target(BaseModel):
    type: str
    id: str | None


class AuditEntry(BaseModel):
    id: str
    at: IsoTime
    actor: Actor
    action: str
    target: Target
    request_id: str
    details: dict | None = None
