"""AI help: natural language to segment rules."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from crm import rules
from crm.ai import rules_provider
from crm.api.deps import SettingsDep, current_user
from crm.models.common import InputModel

router = APIRouter(prefix="/api/ai", tags=["ai"], dependencies=[Depends(current_user)])


class RulesPromptIn(InputModel):
    prompt: str = Field(min_length=1, max_length=1000)


class RulesOut(BaseModel):
    rules: dict[str, Any]
    explanation: str


@router.post("/rules", response_model=RulesOut)
def rules_from_prompt(body: RulesPromptIn, settings: SettingsDep) -> RulesOut:
    """Rules for a description such as "inactive for 6 months and spent > ₹5K"; 422 names what it did not understand."""
    node, explanation = rules_provider(settings).rules_from_prompt(body.prompt)
    group = node if isinstance(node, rules.Group) else rules.Group("and", (node,))
    return RulesOut(rules=group.to_json(), explanation=explanation)
