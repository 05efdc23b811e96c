"""POST /api/campaigns/test-send: a message or its variants to a few CRM users at once, counted in no campaign."""
from __future__ import annotations

import time

from fastapi import APIRouter, Request

from crm.access.policy import EDITORS, EVERY_ROLE, Policy
from crm.api.access import Audit, guarded_by
from crm.api.app import request_time_budget
from crm.api.deps import SettingsDep
from crm.channels import get_channel
from crm.errors import InvalidInput
from crm.models.test_send import TestSendIn, TestSendOut
from crm.services import test_send as service

# The campaigns router's policy: who may send a campaign may test one.
router = APIRouter(prefix="/api/campaigns/test-send", tags=["campaigns"],
                   dependencies=[guarded_by(Policy(read_roles=EVERY_ROLE, write_roles=EDITORS))])


@router.post("", response_model=TestSendOut, response_model_exclude_none=True)
def send_test(body: TestSendIn, request: Request, settings: SettingsDep, audit: Audit) -> TestSendOut:
    """Each address (a CRM user's) gets the message, or every variant (so at most 5 × 4 messages), through the
    campaign channel; a message the channel refuses is a 422 naming its address, one it cannot take now a 503."""
    drafts = body.drafts()
    if settings.channel == "ses":
        missing = [{"loc": ["body", *(["variants", i] if d["name"] else []), "subject"],
                    "msg": "required when the channel is e-mail"} for i, d in enumerate(drafts) if not d["subject"]]
        if missing:
            raise InvalidInput("Invalid input: an e-mail test needs a subject", missing)
    budget = request_time_budget(request.scope.get("aws.context"))
    sent = service.send(audit, get_channel(settings), body.to, drafts, body.customer_id,
                        service.sample_link(settings.public_url),
                        None if budget is None else time.time() + budget)
    return TestSendOut.model_validate({"sent": sent})
