"""People who may use the CRM: invited, or admitted at sign-in by the allow-lists; one role each."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from crm.access.audit import Auditor
from crm.access.principals import USER, Principal, Role
from crm.config import ConfigError, Settings
from crm.db import USERS, find_by_id
from crm.errors import Conflict, Forbidden
from crm.models.common import utcnow
from crm.observability import logger
from crm.pagination import newest_first_page

SIGN_IN_DENIED = "sign_in_denied"
# How a user came to be: which allow-list admitted them at their first sign-in, an invitation, a development token.
BY_ADMIN_EMAILS = "admin_emails"
BY_DOMAIN = "domain"
BY_INVITATION = "invitation"
BY_DEVELOPMENT_TOKEN = "development_token"


@dataclass(frozen=True)
class Identity:
    """Who a sign-in proved someone is. hosted_domain: Google's `hd` claim (a Workspace account's domain)."""

    email: str
    name: str | None = None
    picture: str | None = None
    hosted_domain: str | None = None


def principal_of(doc: dict[str, Any]) -> Principal:
    """Raises ValueError for a role this version does not know (a document written by hand): no rights."""
    return Principal(USER, str(doc["_id"]), doc["email"], doc.get("name"), Role(doc["role"]))


def to_user(doc: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(doc["_id"]), "email": doc["email"], "name": doc.get("name"), "role": doc["role"],
            "disabled": bool(doc.get("disabled")), "created_at": doc["created_at"],
            "last_sign_in_at": doc.get("last_sign_in_at")}


def refuse_open_sign_in(settings: Settings) -> None:
    """A deployed stack never lets every Google account in: its sign-in function does not start without an
    allow-list."""
    if settings.is_deployed and not settings.email_domains and not settings.admin_email_set:
        message = ("Sign-in is closed to everyone: set ALLOWED_EMAIL_DOMAINS or ADMIN_EMAILS (template parameters "
                   "AllowedEmailDomains, AdminEmails) before deploying; refusing to start")
        logger.error(message)
        raise ConfigError(message)


def role_for_newcomer(settings: Settings, identity: Identity) -> tuple[Role, str] | None:
    """The role a first sign-in gets from the allow-lists, and which list admitted it; None when neither does."""
    if identity.email in settings.admin_email_set:
        return Role.ADMIN, BY_ADMIN_EMAILS
    if identity.email.rsplit("@", 1)[1] in settings.email_domains and _domain_account(settings, identity):
        return Role(settings.default_role), BY_DOMAIN
    return None


def still_admitted(settings: Settings, user: dict[str, Any]) -> bool:
    """A person their domain admitted is admitted only while ALLOWED_EMAIL_DOMAINS still names it: taking a domain
    off the list shuts out the people it let in, at their next sign-in and for the tokens they hold, but for those an
    admin has given a role since (`kept`)."""
    return (user.get("admitted_by") != BY_DOMAIN or bool(user.get("kept"))
            or user["email"].rsplit("@", 1)[1] in settings.email_domains)


def _domain_account(settings: Settings, identity: Identity) -> bool:
    """Whether the account is one the address's domain manages, as far as the `hd` claim says."""
    hosted = (identity.hosted_domain or "").lower()
    if hosted:
        # An account of another Workspace organisation is refused, whatever its address says.
        return hosted == identity.email.rsplit("@", 1)[1]
    # No `hd`: a personal account carrying the domain's address, which the domain's organisation does not manage.
    return not settings.require_hosted_domain


def sign_in(db: Database, settings: Settings, identity: Identity, request_id: str,
            role: Role | None = None) -> dict[str, Any]:
    """The signed-in user, created on a first sign-in. `role` (development tokens only) admits anyone with it."""
    users = db[USERS]
    existing = users.find_one({"email": identity.email})
    if existing is not None and existing.get("disabled"):
        raise Forbidden("This account is disabled here", code=SIGN_IN_DENIED)
    granted, admitted_by = _admission(settings, identity, existing, role)
    now = utcnow()
    changes: dict[str, Any] = {"last_sign_in_at": now}
    if identity.name:
        changes["name"] = identity.name
    if identity.picture:
        changes["picture"] = identity.picture
    if role is not None:
        changes["role"] = role.value
    created = {"email": identity.email, "disabled": False, "created_at": now, "invited_by": None,
               "admitted_by": admitted_by}
    if role is None:
        created["role"] = granted

    def upsert_and_record(session: ClientSession) -> dict[str, Any]:
        # Never re-enables a user an admin disabled meanwhile: the filter skips them and the insert then collides.
        doc = users.find_one_and_update({"email": identity.email, "disabled": False},
                                        {"$set": changes, "$setOnInsert": created}, upsert=True,
                                        return_document=ReturnDocument.AFTER, session=session)
        # Named by the stored user: of two first sign-ins at once, the second finds the first's document.
        Auditor(db, principal_of(doc), request_id).record_in(session, "user.sign_in", "user", str(doc["_id"]))
        return doc

    try:
        with db.client.start_session() as session:
            return session.with_transaction(upsert_and_record)
    except DuplicateKeyError as exc:
        raise Forbidden("This account is disabled here", code=SIGN_IN_DENIED) from exc


def _admission(settings: Settings, identity: Identity, existing: dict[str, Any] | None,
               role: Role | None) -> tuple[str, str]:
    """The role a sign-in gets and how the person was admitted; 403 sign_in_denied for someone not admitted."""
    if role is not None:
        return role.value, BY_DEVELOPMENT_TOKEN
    if existing is not None:
        # A person admitted by their domain stays admitted only through an account that domain manages.
        if still_admitted(settings, existing) and (
                existing.get("admitted_by") != BY_DOMAIN or _domain_account(settings, identity)):
            return existing["role"], existing.get("admitted_by") or BY_INVITATION
    else:
        admitted = role_for_newcomer(settings, identity)
        if admitted is not None:
            return admitted[0].value, admitted[1]
    raise Forbidden("This account may not sign in here; ask an admin for an invitation", code=SIGN_IN_DENIED)


def invite(audit: Auditor, email: str, role: Role, name: str | None) -> dict[str, Any]:
    now = utcnow()
    doc = {"_id": ObjectId(), "email": email, "name": name, "role": role.value, "disabled": False,
           "created_at": now, "last_sign_in_at": None, "invited_by": audit.actor.email, "admitted_by": BY_INVITATION}
    try:
        audit.write("user.create", "user", str(doc["_id"]),
                    lambda session: audit.db[USERS].insert_one(doc, session=session), role=role.value)
    except DuplicateKeyError as exc:
        raise Conflict(f"{email} is a user already", code="user_exists") from exc
    return doc


def update(audit: Auditor, user_id: str, role: Role | None, disabled: bool | None) -> dict[str, Any]:
    users = audit.db[USERS]
    target = find_by_id(users, user_id, "user")
    changes: dict[str, Any] = {}
    if role is not None:
        # An admin choosing someone's role keeps them whatever ALLOWED_EMAIL_DOMAINS says later (still only through
        # an account their domain manages: _admission).
        changes.update(role=role.value, kept=True)
    if disabled is not None:
        changes["disabled"] = disabled
    if not changes:
        return target

    def change(session: ClientSession) -> dict[str, Any]:
        current = users.find_one({"_id": target["_id"]}, session=session)
        stays_admin = changes.get("role", current["role"]) == Role.ADMIN.value and not changes.get(
            "disabled", current.get("disabled", False))
        if _is_active_admin(current) and not stays_admin:
            _keep_an_admin(users, current["_id"], session)
        return users.find_one_and_update({"_id": current["_id"]}, {"$set": changes},
                                         return_document=ReturnDocument.AFTER, session=session)

    return audit.write("user.update", "user", user_id, change, **changes)


def _is_active_admin(doc: dict[str, Any]) -> bool:
    return doc["role"] == Role.ADMIN.value and not doc.get("disabled", False)


def _keep_an_admin(users: Collection, leaving: ObjectId, session: ClientSession) -> None:
    """Refuses to take away the last active admin. Every active admin is written in the same transaction, so two
    admins removing each other at once conflict and one of them, retried, sees that it is the last."""
    admins = {"role": Role.ADMIN.value, "disabled": False}
    users.update_many(admins, {"$set": {"admins_checked_at": utcnow()}}, session=session)
    if users.count_documents({**admins, "_id": {"$ne": leaving}}, session=session) == 0:
        raise Conflict("The last admin cannot be demoted or disabled", code="last_admin")


def list_page(db: Database, limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
    docs, next_cursor = newest_first_page(db[USERS], [{}], limit, cursor)
    return [to_user(d) for d in docs], next_cursor
