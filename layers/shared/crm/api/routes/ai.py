"""AI help: natural language to segment rules."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from crm import rules
from crm.access.policy import EDITORS, EVERY_ROLE, Policy, reads_only
from crm.ai import message_suggestions, refuse_unsatisfiable, registry, rules_provider
from crm.api.access import guarded_by
from crm.api.deps import SettingsDep
from crm.api.storage import DbDep
from crm.models.campaigns import Stats
from crm.models.common import InputModel, ObjectIdStr, WholeNumber
from crm.services import campaigns, segments
from crm.services.summary import summarise

# Drafting rules and messages is a marketer's work; a summary reads a campaign, as analysts do.
router = APIRouter(prefix="/api/ai", tags=["ai"],
                   dependencies=[guarded_by(Policy(read_roles=EVERY_ROLE, write_roles=EDITORS))])


class RulesPromptIn(InputModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"prompt": "Users inactive for 6 months and spent > ₹5K"}]})

    prompt: str = Field(min_length=1, max_length=1000)


class RulesOut(BaseModel):
    rules: dict[str, Any]
    explanation: str


@router.post("/rules", response_model=RulesOut)
def rules_from_prompt(body: RulesPromptIn, settings: SettingsDep, db: DbDep) -> RulesOut:
    """Rules for a description such as "inactive for 6 months and spent > ₹5K"; 422 names what it did not understand.
    What it answers the segments API takes: it is checked as they are (a model's answer, or the parser's, with more
    rules than a segment may hold or an empty range, is a 422 naming the prompt)."""
    known = registry.load(db)
    node, explanation = rules_provider(settings).rules_from_prompt(body.prompt, known)
    group = node if isinstance(node, rules.Group) else rules.Group("and", (node,))
    drafted = group.to_json()
    segments.parse_rules(db, drafted, ("body", "prompt"))
    refuse_unsatisfiable(group)
    return RulesOut(rules=drafted, explanation=explanation)


class MessagesIn(InputModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"goal": "Bring back customers inactive for 6 months", "count": 3}]})

    goal: str = Field(min_length=1, max_length=500)
    count: Annotated[WholeNumber, Field(ge=1, le=5)] = 3


class MessagesOut(BaseModel):
    suggestions: list[str]


@router.post("/messages", response_model=MessagesOut)
def suggest_messages(body: MessagesIn, settings: SettingsDep) -> MessagesOut:
    """Varied message drafts for a goal, using {{name}} where it fits."""
    return MessagesOut(suggestions=message_suggestions(settings, body.goal, body.count))


class SummaryIn(InputModel):
    campaign_id: ObjectIdStr


class SummaryOut(BaseModel):
    summary: str
    stats: Stats


@router.post("/summary", response_model=SummaryOut)
@reads_only
def summarise_campaign(body: SummaryIn, db: DbDep) -> SummaryOut:
    """How a campaign did, in words, compared with the user's other campaigns."""
    campaign = campaigns.get(db, body.campaign_id)
    return SummaryOut(summary=summarise(db, campaign), stats=Stats(**campaign["stats"]))
