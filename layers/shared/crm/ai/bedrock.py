"""Rules from a prompt through Amazon Bedrock's Converse API; the model's answer goes through the same
validation as rules a person writes."""
from __future__ import annotations

import json
import re
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from crm import rules
from crm.config import Settings
from crm.errors import DependencyUnavailable, InvalidInput

SYSTEM_PROMPT = """You turn a marketer's description of a customer audience into rules for a CRM.
A rule is {"field": F, "op": O, "value": N} with F one of "spend" (total money spent), "visits" (number of
visits or orders), "inactive_days" (whole days since the customer was last active); O one of > >= < <= == !=;
N a non-negative number (whole for visits and inactive_days; months are 30 days, years 365).
A group is {"and": [...]} or {"or": [...]} of rules and groups, at most 5 deep.
Answer with JSON only: {"rules": <group>, "explanation": "<one sentence>"}.
If any part of the description cannot be expressed with these fields, answer {"error": "<the words you
could not map>"} instead of guessing."""


def _refusal(message: str) -> InvalidInput:
    return InvalidInput(message, [{"loc": ["body", "prompt"], "msg": message}], code="prompt_not_understood")


class BedrockRulesProvider:
    def __init__(self, client: Any, model_id: str):
        self.client = client
        self.model_id = model_id

    @classmethod
    def from_settings(cls, settings: Settings) -> BedrockRulesProvider:
        client = boto3.client("bedrock-runtime", region_name=settings.aws_region, config=Config(
            connect_timeout=5, read_timeout=settings.bedrock_timeout_seconds, retries={"max_attempts": 2}))
        return cls(client, settings.bedrock_model_id)

    def rules_from_prompt(self, prompt: str) -> tuple[rules.Node, str]:
        answer = self._ask(prompt)
        if "error" in answer:
            raise _refusal(f"Did not understand: {answer['error']}")
        try:
            node = rules.parse(answer.get("rules"), loc=("model", "rules"))
        except InvalidInput as exc:
            raise _refusal(f"The model's rules were not valid ({exc.message}); rephrase the prompt") from exc
        explanation = answer.get("explanation")
        return node, explanation if isinstance(explanation, str) and explanation else rules.describe(node)

    def _ask(self, prompt: str) -> dict[str, Any]:
        answer = converse_json(self.client, self.model_id, SYSTEM_PROMPT, prompt, temperature=0)
        if answer is None:
            raise _refusal("The model did not answer with rules; rephrase the prompt")
        return answer


def converse_json(client: Any, model_id: str, system: str, prompt: str, temperature: float) -> dict[str, Any] | None:
    """The JSON object in the model's answer, or None when it gave none; 503 when Bedrock fails."""
    try:
        reply = client.converse(
            modelId=model_id,
            system=[{"text": system}],
            messages=[{"role": "user", "content": [{"text": prompt}]}],
            inferenceConfig={"maxTokens": 800, "temperature": temperature},
        )
    except (BotoCoreError, ClientError) as exc:
        raise DependencyUnavailable("The AI provider is unavailable") from exc
    text = "".join(block.get("text", "") for block in reply["output"]["message"]["content"])
    match = re.search(r"\{.*\}", text, re.DOTALL)  # models sometimes wrap JSON in prose or fences
    try:
        answer = json.loads(match.group(0)) if match else None
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None
