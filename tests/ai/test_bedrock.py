"""The Bedrock rules provider, against botocore's Stubber: the v2 tool schema, the registry in its context and the
same validation as the parser's rules."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import boto3
import pytest
from botocore.stub import ANY, Stubber

from crm import rules
from crm.ai import rules_provider
from crm.ai.bedrock import (
    MAX_KEYS,
    MAX_SHOWN_NAMES,
    MAX_SHOWN_VALUES,
    TOOL,
    TOOL_NAME,
    BedrockRulesProvider,
    system_prompt,
)
from crm.ai.registry import BrandRegistry
from crm.config import Settings
from crm.errors import DependencyUnavailable, InvalidInput
from crm.services.attributes import KnownAttributes

MODEL = "amazon.nova-lite-v1:0"
KNOWN = KnownAttributes(types={"city": "string", "age": "number"}, values={"city": ["Mumbai", "Pune"]})
DIWALI = "64a000000000000000000001"
V3_RULES = {"or": [
    {"and": [{"field": "campaign", "campaign_id": DIWALI, "op": "==", "value": "received"},
             {"field": "campaign", "campaign_id": DIWALI, "op": "!=", "value": "opened"}]},
    {"field": "order_spend", "days": 18, "op": "between", "value": [1000, 5000]},
    {"field": "bought", "days": 30, "op": "has_any", "value": ["TEA-01"]},
]}
V2_RULES = {"and": [
    {"field": "tags", "op": "has_any", "value": ["vip", "gold"]},
    {"field": "attributes.city", "op": "==", "value": "Mumbai"},
    {"not": {"field": "subscribed", "op": "==", "value": False}},
]}


class SystemText:
    """Matches a Converse `system` parameter whose text holds every one of these words."""

    def __init__(self, *words: str):
        self.words = words

    def __eq__(self, other: object) -> bool:
        return isinstance(other, list) and all(word in other[0]["text"] for word in self.words)

    def __repr__(self) -> str:
        return f"SystemText{self.words}"


@pytest.fixture
def bedrock():
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield BedrockRulesProvider(client, MODEL), stubber
        stubber.assert_no_pending_responses()


def _reply(*blocks: dict) -> dict:
    return {"output": {"message": {"role": "assistant", "content": list(blocks)}}, "stopReason": "end_turn",
            "usage": {"inputTokens": 10, "outputTokens": 20, "totalTokens": 30}, "metrics": {"latencyMs": 5}}


def _tool_use(answer) -> dict:
    return {"toolUse": {"toolUseId": "t1", "name": TOOL_NAME, "input": answer}}


def _expect(stubber, prompt: str, *blocks: dict, system=ANY, model: str = MODEL) -> None:
    stubber.add_response("converse", _reply(*blocks), {
        "modelId": model, "system": system, "messages": [{"role": "user", "content": [{"text": prompt}]}],
        "inferenceConfig": ANY,
        "toolConfig": {"tools": [{"toolSpec": TOOL}], "toolChoice": {"tool": {"name": TOOL_NAME}}},
    })


def test_v2_tool_answer_becomes_rules_with_the_registry_in_context(bedrock):
    provider, stubber = bedrock
    prompt = "vip or gold customers in Mumbai who have not unsubscribed"
    _expect(stubber, prompt, {"text": "Calling the tool."},
            _tool_use({"rules": V2_RULES, "explanation": "Everyone."}),
            system=SystemText("has_any", "attributes.<key>", '- city: string; known values "Mumbai", "Pune"',
                              "- age: number"))
    node, explanation = provider.rules_from_prompt(prompt, KNOWN)
    assert node.to_json() == V2_RULES
    assert explanation == f"Customers who {rules.describe(node)}.", "explained from the rules, not the model's words"


def test_v3_answer_becomes_rules_with_tags_products_and_campaigns_in_context(bedrock):
    provider, stubber = bedrock
    known = BrandRegistry(types=KNOWN.types, values=KNOWN.values, tags=("vip",), products={"TEA-01": "Masala Chai"},
                          campaigns=((DIWALI, "Diwali Sale"),))
    prompt = "non-openers of the Diwali Sale, or spent 1-5k this month, or bought masala chai in the last 30 days"
    _expect(stubber, prompt, _tool_use({"rules": V3_RULES}),
            system=SystemText("order_spend", "messages_received", "since 1 October", 'Tags: "vip"',
                              'Products (SKU: name): "TEA-01": "Masala Chai"',
                              f'Campaigns (id: name): "{DIWALI}": "Diwali Sale"'))
    node, explanation = provider.rules_from_prompt(prompt, known)
    assert node.to_json() == V3_RULES
    assert explanation == f"Customers who {rules.describe(node)}."


def test_text_json_answer_still_works(bedrock):
    provider, stubber = bedrock
    rules_json = {"and": [{"field": "inactive_days", "op": ">", "value": 180}, {"field": "spend", "op": ">",
                                                                               "value": 5000}]}
    _expect(stubber, "lapsed big spenders", {"text": "Here you go:\n```json\n" + json.dumps(
        {"rules": rules_json, "explanation": "Lapsed customers who spent a lot."}) + "\n```"})
    node, explanation = provider.rules_from_prompt("lapsed big spenders", KNOWN)
    assert node.to_json() == rules_json
    assert explanation.startswith("Customers who") and "180" in explanation


def test_the_explanation_is_written_from_the_rules(bedrock):
    provider, stubber = bedrock
    _expect(stubber, "people in Pune", _tool_use({"rules": {"field": "attributes.city", "op": "==", "value": "Pune"}}))
    _, explanation = provider.rules_from_prompt("people in Pune", KNOWN)
    assert explanation == "Customers who city is Pune."


@pytest.mark.parametrize("answer, reason", [
    ({"rules": {"field": "attributes.country", "op": "==", "value": "India"}}, "no customer has attribute country"),
    ({"rules": {"and": [{"field": "attributes.city", "op": ">", "value": 5}]}}, "attribute city is a string"),
    ({"rules": {"field": "attributes.age", "op": "starts_with", "value": "3"}}, "attribute age is a number"),
    ({"rules": {"field": "tags", "op": ">", "value": 1}}, "not valid"),
    ({"explanation": "no rules"}, "not valid"),
    ({"error": "favourite colour"}, "Did not understand: favourite colour"),
    ({"rules": V2_RULES, "error": "loyal"}, "Did not understand: loyal"),
    ("a string, not an object", "did not answer with rules"),
])
def test_tool_answers_outside_the_language_or_registry_are_refused(bedrock, answer, reason):
    provider, stubber = bedrock
    _expect(stubber, "something", _tool_use(answer))
    with pytest.raises(InvalidInput) as caught:
        provider.rules_from_prompt("something", KNOWN)
    assert caught.value.code == "prompt_not_understood"
    assert reason in caught.value.message


@pytest.mark.parametrize("text, reason", [
    (json.dumps({"rules": {"and": [{"field": "age", "op": ">", "value": 30}]}}), "not valid"),
    (json.dumps({"rules": {"and": [{"field": "spend", "op": "~", "value": 1}]}}), "not valid"),
    (json.dumps({"error": "favourite colour"}), "favourite colour"),
    ("I cannot help with that.", "did not answer with rules"),
    ("{not json}", "did not answer with rules"),
])
def test_invalid_text_answers_are_refused_not_passed_on(bedrock, text, reason):
    provider, stubber = bedrock
    _expect(stubber, "something", {"text": text})
    with pytest.raises(InvalidInput) as caught:
        provider.rules_from_prompt("something", KNOWN)
    assert caught.value.code == "prompt_not_understood"
    assert reason in caught.value.message


def test_bedrock_errors_are_503(bedrock):
    provider, stubber = bedrock
    stubber.add_client_error("converse", service_error_code="ThrottlingException", http_status_code=429)
    with pytest.raises(DependencyUnavailable):
        provider.rules_from_prompt("anything", KNOWN)


def test_tool_is_offered_but_not_forced_where_bedrock_cannot_force_it():
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    model = "meta.llama3-1-70b-instruct-v1:0"
    with Stubber(client) as stubber:
        stubber.add_response("converse", _reply(_tool_use({"rules": V2_RULES})), {
            "modelId": model, "system": ANY, "messages": ANY, "inferenceConfig": ANY,
            "toolConfig": {"tools": [{"toolSpec": TOOL}]}})
        node, _ = BedrockRulesProvider(client, model).rules_from_prompt("anything", KNOWN)
    assert node.to_json() == V2_RULES


def test_context_is_bounded_and_puts_what_the_prompt_names_first():
    types = {f"key_{i:03}": "string" for i in range(300)} | {"zz_city": "string", "Not A Key": "string"}
    values = {key: [f"value {j}" for j in range(100)] for key in types}
    values["zz_city"] = [f"town {j}" for j in range(98)] + ["Mumbai", "x" * 61]
    today = datetime(2026, 3, 4, tzinfo=timezone.utc)
    text = system_prompt("shoppers in mumbai", KnownAttributes(types, values), today)
    lines = text.split("Attribute keys:\n")[1].splitlines()
    assert len(lines) == MAX_KEYS
    assert lines[0].startswith('- zz_city: string; known values "Mumbai", "town 0"')
    assert all(line.count('"') == 2 * MAX_SHOWN_VALUES for line in lines)
    assert "Not A Key" not in text and "x" * 61 not in text
    assert "Today is 2026-03-04" in text


def test_names_in_context_are_bounded_and_those_the_prompt_names_come_first():
    known = BrandRegistry(tags=tuple(f"tag-{i}" for i in range(200)) + ("vip",),
                          products={f"SKU-{i:04}": f"Product {i}" for i in range(300)} | {"TEA-9": "Masala Chai"},
                          campaigns=tuple((f"{i:024x}", f"Campaign {i}") for i in range(100)) + (
                              (DIWALI, "Diwali Sale"), ("f" * 24, "x" * 61)))
    text = system_prompt("vip buyers of masala chai who skipped the diwali sale", known,
                         datetime(2026, 3, 4, tzinfo=timezone.utc))
    lines = {line.split(":")[0]: line for line in text.splitlines() if line.startswith(("Tags", "Products", "Camp"))}
    assert lines["Tags"].startswith('Tags: "vip", "tag-0"') and lines["Tags"].count('"') == 2 * MAX_SHOWN_NAMES
    assert lines["Products (SKU"].startswith('Products (SKU: name): "TEA-9": "Masala Chai", "SKU-0000"')
    assert lines["Campaigns (id"].startswith(f'Campaigns (id: name): "{DIWALI}": "Diwali Sale"')
    assert lines["Campaigns (id"].count('"') == 4 * MAX_SHOWN_NAMES and "x" * 61 not in text


def test_empty_registry_says_no_attribute_can_be_used():
    text = system_prompt("anything", KnownAttributes(), datetime(2026, 3, 4, tzinfo=timezone.utc))
    assert text.endswith("Attribute keys:\n(none yet: refuse any attribute)")


def test_tool_schema_takes_the_v2_and_v3_language_and_nothing_else():
    jsonschema = pytest.importorskip("jsonschema")
    schema = TOOL["inputSchema"]["json"]
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for good in ({"rules": V2_RULES, "explanation": "x"}, {"error": "loyal"}, {"rules": V3_RULES},
                 {"rules": {"field": "spend", "op": "between", "value": [1, 5]}},
                 {"rules": {"field": "opened", "days": 730, "op": "==", "value": 0}}):
        assert validator.is_valid(good), good
    for bad in ({"rules": {"field": "age", "op": ">", "value": 1}}, {"rules": {"and": []}},
                {"rules": {"field": "spend", "op": "~", "value": 1}}, {"rules": {"not": V2_RULES, "and": [V2_RULES]}},
                {"rules": {"field": "orders", "days": 0, "op": ">", "value": 1}},
                {"rules": {"field": "orders", "days": 731, "op": ">", "value": 1}},
                {"rules": {"field": "orders", "op": ">", "value": 1}},
                {"rules": {"field": "spend", "days": 30, "op": ">", "value": 1}},
                {"rules": {"field": "bought", "days": 30, "op": ">", "value": 1}},
                {"rules": {"field": "campaign", "campaign_id": DIWALI, "op": "==", "value": "bought"}},
                {"rules": {"field": "campaign", "campaign_id": "Diwali Sale", "op": "==", "value": "opened"}},
                {"rules": {"field": "campaign", "days": 30, "op": "==", "value": "opened"}}):
        assert not validator.is_valid(bad), bad


def test_provider_is_chosen_by_config():
    assert type(rules_provider(Settings(ai_provider="parser"))).__name__ == "ParserRulesProvider"
    chosen = rules_provider(Settings(ai_provider="bedrock", bedrock_model_id="my-model"))
    assert isinstance(chosen, BedrockRulesProvider) and chosen.model_id == "my-model"
