"""Message suggestions for a campaign goal: offline templates by default, Bedrock when configured."""
from __future__ import annotations

import hashlib
import re
from typing import Any

from crm.errors import InvalidInput

TEMPLATES = [
    "Hi {{first_name}}, {goal}. We saved something for you - take a look today.",
    "{{name}}, this one is just for you: {goal}.",
    "Good news, {{first_name}}! {Goal} - don't miss out.",
    "{{first_name}}, it's been a while. {Goal}, and we'd love to see you again.",
    "Only for you, {{name}}: {goal}. Tap to find out more.",
    "Hey {{first_name}} - {goal}. Offer ends soon!",
    "{Goal}. Thanks for being with us, {{first_name}}!",
]
MAX_LENGTH = 320


def offline_suggestions(goal: str, count: int) -> list[str]:
    """`count` different messages, chosen by the goal so the same goal gives the same set."""
    phrase = re.sub(r"\s+", " ", goal).strip().rstrip(".!?")
    if not any(c.isalnum() for c in phrase):
        raise InvalidInput("The goal has no words to write about",
                           [{"loc": ["body", "goal"], "msg": "must contain words"}], code="goal_not_understood")
    lower = phrase[0].lower() + phrase[1:] if phrase[:2] != phrase[:2].upper() else phrase
    start = int(hashlib.sha256(phrase.lower().encode()).hexdigest(), 16) % len(TEMPLATES)
    picks = [TEMPLATES[(start + i) % len(TEMPLATES)] for i in range(count)]
    return [t.replace("{Goal}", phrase[0].upper() + phrase[1:]).replace("{goal}", lower)[:MAX_LENGTH] for t in picks]


BEDROCK_SYSTEM_PROMPT = """You write short marketing messages (SMS length, under 300 characters) for a brand.
Use the placeholder {{name}} or {{first_name}} where addressing the customer fits. Vary tone and wording.
Answer with JSON only: {"suggestions": ["...", "..."]} with exactly the number of messages asked for."""


def bedrock_suggestions(client: Any, model_id: str, goal: str, count: int) -> list[str]:
    from crm.ai.bedrock import converse_json

    answer = converse_json(client, model_id, BEDROCK_SYSTEM_PROMPT, f"{count} messages. Goal: {goal}",
                           temperature=0.7)
    suggestions = answer.get("suggestions") if answer else None
    if not isinstance(suggestions, list) or not all(isinstance(s, str) and s.strip() for s in suggestions):
        raise InvalidInput("The model did not answer with messages; try another goal",
                           [{"loc": ["body", "goal"], "msg": "no usable suggestions"}], code="goal_not_understood")
    return [s.strip()[:MAX_LENGTH] for s in suggestions[:count]]
