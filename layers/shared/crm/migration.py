"""The migration a CloudFormation custom resource runs once per deploy: the database's indexes.

Requests never create indexes (building one on a large collection would hold a request for minutes);
this runs at deploy, and locally when the offline runner starts.
"""
from __future__ import annotations

import json
import urllib.request
from typing import Any

from crm.db import ensure_indexes, get_db
from crm.observability import logger

RESPONSE_TIMEOUT_SECONDS = 10


def handler(event: dict[str, Any], context: Any) -> None:
    """Creates and updates ensure the indexes; a delete leaves the data and its indexes alone."""
    status, reason = "SUCCESS", "indexes ensured"
    try:
        if event.get("RequestType") in ("Create", "Update"):
            ensure_indexes(get_db())
        else:
            reason = "nothing to do on delete"
    except Exception as exc:  # noqa: BLE001 - CloudFormation must hear of any failure, or it waits for an hour
        logger.exception("migration failed")
        status, reason = "FAILED", f"{type(exc).__name__}: see the function's log"
    respond(event, context, status, reason)


def respond(event: dict[str, Any], context: Any, status: str, reason: str) -> None:
    """PUTs the outcome to the pre-signed URL CloudFormation waits on."""
    body = json.dumps({
        "Status": status, "Reason": reason,
        "PhysicalResourceId": event.get("PhysicalResourceId") or f"{event.get('LogicalResourceId', 'Migration')}-indexes",
        "StackId": event.get("StackId"), "RequestId": event.get("RequestId"),
        "LogicalResourceId": event.get("LogicalResourceId"), "Data": {},
    }).encode()
    # The pre-signed URL is signed without a content type, so none may be sent.
    request = urllib.request.Request(event["ResponseURL"], data=body, method="PUT",
                                     headers={"Content-Type": "", "Content-Length": str(len(body))})
    with urllib.request.urlopen(request, timeout=RESPONSE_TIMEOUT_SECONDS) as reply:  # noqa: S310 - CloudFormation's URL
        logger.info("custom resource answered", extra={"status": status, "http_status": reply.status})
