"""AI helpers behind one provider interface: the offline parser by default, Amazon Bedrock by config."""
from __future__ import annotations

from typing import Protocol

from crm import rules
from crm.config import Settings
from crm.services.attributes import KnownAttributes


class RulesProvider(Protocol):
    def rules_from_prompt(self, prompt: str, known: KnownAttributes) -> tuple[rules.Node, str]:
        """Validated rules and an explanation in words; InvalidInput when the prompt cannot be mapped. `known`
        is what the attribute registry holds: the keys a rule may name and the values words may stand for."""


class ParserRulesProvider:
    def rules_from_prompt(self, prompt: str, known: KnownAttributes) -> tuple[rules.Node, str]:
        from crm.ai.rules_parser import parse_prompt

        return parse_prompt(prompt, known)


def message_suggestions(settings: Settings, goal: str, count: int) -> list[str]:
    if settings.ai_provider == "bedrock":
        from crm.ai.bedrock import BedrockRulesProvider
        from crm.ai.messages import bedrock_suggestions

        provider = BedrockRulesProvider.from_settings(settings)
        return bedrock_suggestions(provider.client, provider.model_id, goal, count)
    from crm.ai.messages import offline_suggestions

    return offline_suggestions(goal, count)


def rules_provider(settings: Settings) -> RulesProvider:
    if settings.ai_provider == "bedrock":
        from crm.ai.bedrock import BedrockRulesProvider  # boto3 only where Bedrock is chosen

        return BedrockRulesProvider.from_settings(settings)
    return ParserRulesProvider()
