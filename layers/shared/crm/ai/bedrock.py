"""Rules from a prompt through Amazon Bedrock's Converse API; the model's answer goes through the same
validation as rules a person writes."""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any, Callable

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from crm import rules
from crm.ai import registry as brand_registry
from crm.config import Settings
from crm.errors import DependencyUnavailable, InvalidInput
from crm.services.attributes import KnownAttributes

TOOL_NAME = "segment_rules"
# The registry's part of the system text stays bounded however many keys and values customers bring.
MAX_KEYS = 200
MAX_SHOWN_VALUES = 5
MAX_SHOWN_LENGTH = 60
MAX_ERROR_WORDS = 200
MAX_SHOWN_NAMES = 50
# Bedrock accepts a forced tool choice for these model families only; others choose the tool themselves.
FORCED_TOOL_MODELS = ("anthropic.", "amazon.nova")

_DAYS = {"type": "integer", "minimum": 1, "maximum": rules.MAX_DAYS}
_NODE = {"anyOf": [
    {"type": "object", "required": ["field", "op", "value"], "additionalProperties": False, "properties": {
        "field": {"anyOf": [{"enum": list(rules.FIELDS)},
                            {"type": "string", "pattern": rules.ATTRIBUTE_FIELD.pattern}]},
        "op": {"enum": list(rules.OPERATORS)},
        "value": {"anyOf": [
            {"type": ["number", "string", "boolean"]},
            {"type": "array", "minItems": 1, "maxItems": rules.MAX_VALUES, "items": {"type": ["number", "string"]}},
        ]}}},
    # Rules v3: behaviour in the last `days` days, and what one campaign did.
    {"type": "object", "required": ["field", "days", "op", "value"], "additionalProperties": False, "properties": {
        "field": {"enum": list(rules.WINDOW_NUMBER_FIELDS)}, "days": _DAYS, "op": {"enum": list(rules.NUMBER_OPS)},
        "value": {"anyOf": [{"type": "number"},
                            {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "number"}}]}}},
    {"type": "object", "required": ["field", "days", "op", "value"], "additionalProperties": False, "properties": {
        "field": {"const": rules.BOUGHT}, "days": _DAYS, "op": {"enum": list(rules.LIST_OPS)},
        "value": {"type": "array", "minItems": 1, "maxItems": rules.MAX_VALUES, "items": {"type": "string"}}}},
    {"type": "object", "required": ["field", "campaign_id", "op", "value"], "additionalProperties": False,
     "properties": {"field": {"const": rules.CAMPAIGN}, "campaign_id": {"type": "string", "pattern": "^[0-9a-f]{24}$"},
                    "op": {"enum": list(rules.CAMPAIGN_OPS)}, "value": {"enum": list(rules.CAMPAIGN_EVENTS)}}},
    *({"type": "object", "required": [kind], "additionalProperties": False, "properties": {kind: {
        "type": "array", "minItems": 1, "maxItems": rules.MAX_RULES, "items": {"$ref": "#/$defs/node"}}}}
      for kind in rules.GROUP_KINDS),
    {"type": "object", "required": [rules.NOT], "additionalProperties": False,
     "properties": {rules.NOT: {"$ref": "#/$defs/node"}}},
]}
TOOL = {
    "name": TOOL_NAME,
    "description": "The segment rules for the audience described, or the words that could not be mapped.",
    "inputSchema": {"json": {
        "type": "object", "$defs": {"node": _NODE},
        # Either rules or error; not a top-level oneOf, which some models' tool schemas refuse.
        "properties": {
            "rules": {"$ref": "#/$defs/node"},
            "error": {"type": "string", "description": "instead of rules: the words that could not be mapped"},
        },
    }},
}

LANGUAGE = f"""You turn a marketer's description of a customer audience into segment rules for a CRM, and answer \
only by calling the {TOOL_NAME} tool.
A rule is {{"field": F, "op": O, "value": V}}. Fields and their operators:
- spend (total money spent), visits (visits or orders), inactive_days (whole days since last active), signup_days \
(whole days since signing up): > >= < <= == != with a number of 0 or more, or between [low, high] (inclusive). \
Visits and days are whole numbers; a month is 30 days, a year 365.
- tags, skus (every product SKU the customer has bought): has_any, has_all, has_none with a list of 1-100 texts.
- subscribed (may receive email): == true or false.
- attributes.<key>, only for a key listed below, by its type. number: as above, any sign. string: == != \
starts_with with a text; in, not_in with a list of 1-100 texts. time: before, after with an ISO 8601 time with a \
zone such as 2026-01-31T00:00:00Z; between [from, to]. boolean: == true or false. Any key: exists true or false.
A customer without an attribute matches only exists false, !=, not_in and has_none on it.
Behaviour in the last N days (N from 1 to {rules.MAX_DAYS}; the last N UTC days, today included) is \
{{"field": F, "days": N, "op": O, "value": V}}: orders (orders placed), order_spend (their amounts' sum), \
messages_received, opened, clicked (campaign messages sent to, opened, clicked by the customer) with a number op \
and a whole number (an amount for order_spend); bought with has_any, has_all, has_none and a list of SKUs. A \
customer with no orders or messages has 0 of each. "in the last 2 weeks" is 14 days, "in the past month" 30; a \
period running to today ("this month", "since 1 October") is the days from its first day to today, today included. \
A period that ended before today ("last month", "last quarter", "in October") is no such window, and "since \
October" or "since last month" may count from its first day or from the day after its last: answer with an error \
naming it, never with a window that runs to today.
One campaign, only one listed below by name: {{"field": "campaign", "campaign_id": ID, "op": "==" or "!=", \
"value": "received" | "opened" | "clicked" | "converted"}}; "didn't open X" is opened !=; non-openers of X (resend \
to them) are received == and opened !=.
Groups: {{"and": [...]}} and {{"or": [...]}} of 1 or more rules or groups, {{"not": <rule or group>}}; nesting at \
most {rules.MAX_DEPTH} deep, at most {rules.MAX_RULES} rules in all.
Call the tool with {{"rules": <rule or group>}}.
A text from the description may be the == != in or not_in value of a string attribute only if it is one of that \
key's known values below; a word is a tag, a product or a campaign only if it is listed below (a tag may also be any \
word after "tagged"). If any part of the description cannot be expressed with these fields, keys and values, \
call the tool with {{"error": "<the words you could not map>"}} instead: refuse rather than guess."""


def system_prompt(prompt: str, known: KnownAttributes, today: datetime) -> str:
    """The rule language, today's date and the registry's keys, the ones the prompt mentions first."""
    words = prompt.casefold()

    def mentioned(text: str) -> bool:
        return bool(text) and text.casefold() in words

    def values(key: str) -> list[str]:
        # A cut value would be one no customer has; an over-long one is left out instead.
        listed = known.values.get(key, []) if known.types[key] == "string" else []
        return [v for v in listed if isinstance(v, str) and 0 < len(v) <= MAX_SHOWN_LENGTH]

    def key_line(key: str) -> str:
        # The values the prompt names come first, so the model can map them even when a key has many.
        shown = sorted(values(key), key=lambda v: not mentioned(v))[:MAX_SHOWN_VALUES]
        # JSON quoting, so a value's quotes or line breaks cannot pass for instructions.
        listed = f"; known values {', '.join(json.dumps(v, ensure_ascii=False) for v in shown)}" if shown else ""
        return f"- {key}: {known.types[key]}{listed}"

    def unmentioned(key: str) -> bool:
        return not (mentioned(key.replace("_", " ")) or any(map(mentioned, values(key))))

    keys = sorted((k for k in known.types if rules.ATTRIBUTE_FIELD.fullmatch(rules.ATTRIBUTE_PREFIX + k)),
                  key=lambda k: (unmentioned(k), k))
    registry = "\n".join(key_line(key) for key in keys[:MAX_KEYS]) or "(none yet: refuse any attribute)"
    return (f"{LANGUAGE}\nToday is {today:%Y-%m-%d} (UTC).\n{_names(brand_registry.of(known), mentioned)}"
            f"Attribute keys:\n{registry}")


def _names(known: brand_registry.BrandRegistry, mentioned: Callable[[str], bool]) -> str:
    """The tags, products (SKU: name) and campaigns (id: name) words may stand for, those the prompt names first,
    MAX_SHOWN_NAMES of each, JSON-quoted."""
    def listed(pairs: list[tuple[str, str]], keyed: bool) -> str:
        fitting = [(key, name) for key, name in pairs if 0 < len(name) <= MAX_SHOWN_LENGTH]
        shown = sorted(fitting, key=lambda pair: not (mentioned(pair[1]) or mentioned(pair[0])))[:MAX_SHOWN_NAMES]
        said = [f"{json.dumps(k, ensure_ascii=False)}: {json.dumps(n, ensure_ascii=False)}" if keyed
                else json.dumps(n, ensure_ascii=False) for k, n in shown]
        return ", ".join(said) or "(none)"

    return (f"Tags: {listed([(tag, tag) for tag in known.tags], keyed=False)}\n"
            f"Products (SKU: name): {listed(sorted(known.products.items()), keyed=True)}\n"
            f"Campaigns (id: name): {listed(list(known.campaigns), keyed=True)}\n")


def _refusal(message: str) -> InvalidInput:
    return InvalidInput(message, [{"loc": ["body", "prompt"], "msg": message}], code="prompt_not_understood")


class BedrockRulesProvider:
    def __init__(self, client: Any, model_id: str):
        self.client = client
        self.model_id = model_id

    @classmethod
    def from_settings(cls, settings: Settings) -> BedrockRulesProvider:
        client = boto3.client("bedrock-runtime", region_name=settings.aws_region, config=Config(
            # One attempt within the AI function's time: a retry after a slow answer would outlast it (503 instead).
            connect_timeout=3, read_timeout=settings.bedrock_timeout_seconds, retries={"total_max_attempts": 1}))
        return cls(client, settings.bedrock_model_id)

    def rules_from_prompt(self, prompt: str, known: KnownAttributes) -> tuple[rules.Node, str]:
        system = system_prompt(prompt, known, datetime.now(timezone.utc))
        answer = converse_json(self.client, self.model_id, system, prompt, temperature=0, tool=TOOL, max_tokens=2000)
        if answer is None:
            raise _refusal("The model did not answer with rules; rephrase the prompt")
        if answer.get("error"):
            raise _refusal(f"Did not understand: {str(answer['error'])[:MAX_ERROR_WORDS]}")
        try:
            node = rules.parse(answer.get("rules"), loc=("model", "rules"), attributes=known.types)
        except InvalidInput as exc:
            raise _refusal(f"The model's rules were not valid ({exc.message}); rephrase the prompt") from exc
        # Explained from the validated rules, never in the model's words, which could say something else.
        return node, f"Customers who {rules.describe(node)}."


def converse_json(client: Any, model_id: str, system: str, prompt: str, temperature: float,
                  tool: dict[str, Any] | None = None, max_tokens: int = 800) -> dict[str, Any] | None:
    """The model's JSON answer (the tool's input, or the object in its text); None when it gave none; 503 when
    Bedrock fails."""
    request: dict[str, Any] = {
        "modelId": model_id,
        "system": [{"text": system}],
        "messages": [{"role": "user", "content": [{"text": prompt}]}],
        "inferenceConfig": {"maxTokens": max_tokens, "temperature": temperature},
    }
    if tool:
        request["toolConfig"] = {"tools": [{"toolSpec": tool}]}
        if any(family in model_id for family in FORCED_TOOL_MODELS):
            request["toolConfig"]["toolChoice"] = {"tool": {"name": tool["name"]}}
    try:
        reply = client.converse(**request)
    except (BotoCoreError, ClientError) as exc:
        raise DependencyUnavailable("The AI provider is unavailable") from exc
    content = reply["output"]["message"]["content"]
    for block in content:
        use = block.get("toolUse")
        if tool and use and use.get("name") == tool["name"]:
            return use.get("input") if isinstance(use.get("input"), dict) else None
    text = "".join(block.get("text", "") for block in content)
    match = re.search(r"\{.*\}", text, re.DOTALL)  # models sometimes wrap JSON in prose or fences
    try:
        answer = json.loads(match.group(0)) if match else None
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None
