"""AI helpers behind one provider interface: the offline parser by default, Amazon Bedrock by config."""
from __future__ import annotations

from typing import Any, Protocol

from crm import rules
from crm.config import Settings
from crm.errors import InvalidInput
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


def refuse_unsatisfiable(group: rules.Group, code: str = InvalidInput.code) -> None:
    """A drafted `and` no one can meet ("at least 10 and at most 5", "visited 5 times and 10 times") is never what
    the prompt meant: a 422 naming the prompt, whichever provider drafted it."""
    branches = [c for c in group.children if isinstance(c, rules.Group)] if group.kind == "or" else [group]
    for branch in branches:
        equal: dict[Any, set[Any]] = {}
        for rule in branch.children:
            said = rule.to_json() if isinstance(rule, (rules.Rule, rules.Behaviour)) else {}
            # A campaign's outcomes are not one value: received and clicked may both hold.
            if said.get("op") == "==" and said.get("field") != "campaign" and not isinstance(said["value"], list):
                equal.setdefault((said["field"], said.get("days")), set()).add(said["value"])
        if clash := sorted(field for (field, _), values in equal.items() if len(values) > 1):
            raise _no_one(f"{clash[0]} cannot equal two values at once", code)
    if empty := rules.empty_ranges(group):
        raise _no_one(f"the range of {', '.join(sorted(set(empty)))} is empty", code)


def _no_one(why: str, code: str) -> InvalidInput:
    return InvalidInput(f"No one can match this: {why}", [{"loc": ["body", "prompt"], "msg": why}], code=code)
