"""Who a bearer credential is: a person's JWT (their role read from the users collection) or an API key.

What a container reads about a user or a key it keeps for AUTH_CACHE_SECONDS: a request costs at most one indexed
read, and a role change, a disabling or a revocation reaches credentials already issued within that time.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

from cachetools import TTLCache
from pymongo.database import Database

from crm.access import api_keys, users
from crm.access.principals import Principal
from crm.auth import verify_token
from crm.config import Settings
from crm.db import API_KEYS, USERS
from crm.errors import Unauthorized
from crm.models.common import utcnow

CACHE_SIZE = 4096
_caches: dict[float, TTLCache] = {}
_lock = threading.Lock()


def authenticate(database: Callable[[], Database], settings: Settings, credential: str) -> Principal:
    """database: called only for a credential that passed every check made without it (a JWT's signature, a key's
    form), so that strangers cost no connection and are refused while the database is down too."""
    if api_keys.looks_like_key(credential):
        if not api_keys.well_formed(credential):
            raise Unauthorized("Invalid or revoked API key")
        db = database()
        key = _cached(settings, (db.name, API_KEYS, api_keys.digest(credential)),
                      lambda: api_keys.find(db[API_KEYS], credential))
        if key is None:
            raise Unauthorized("Invalid or revoked API key")
        api_keys.note_use(db[API_KEYS], key, utcnow())
        return api_keys.principal_of(key)
    email = verify_token(settings, credential)
    db = database()
    user = _cached(settings, (db.name, USERS, email), lambda: db[USERS].find_one(
        {"email": email}, {"email": 1, "name": 1, "role": 1, "disabled": 1, "admitted_by": 1, "kept": 1}))
    if user is None or user.get("disabled") or not users.still_admitted(settings, user):
        raise Unauthorized("This account is disabled or unknown here")
    try:
        return users.principal_of(user)
    except ValueError as exc:
        raise Unauthorized("This account has no role here") from exc


def _cached(settings: Settings, key: tuple, read: Callable[[], dict[str, Any] | None]) -> dict[str, Any] | None:
    """What `read` finds, kept for a while; what it does not find is not kept (a key just created works at once)."""
    if settings.auth_cache_seconds <= 0:
        return read()
    with _lock:
        cache = _caches.setdefault(settings.auth_cache_seconds, TTLCache(CACHE_SIZE, settings.auth_cache_seconds))
        found = cache.get(key)
    if found is None:
        found = read()
        if found is not None:
            with _lock:
                cache[key] = found
    return found


def forget_all() -> None:
    """Drops what this container knows (a new container's view)."""
    with _lock:
        _caches.clear()
