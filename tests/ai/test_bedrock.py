"""The Bedrock rules provider, against botocore's Stubber: same validation as the parser's rules."""
from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import ANY, Stubber

from crm.ai import rules_provider
from crm.ai.bedrock import SYSTEM_PROMPT, BedrockRulesProvider
from crm.config import Settings
from crm.errors import DependencyUnavailable, InvalidInput

MODEL = "amazon.nova-lite-v1:0"


@pytest.fixture
def bedrock():
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield BedrockRulesProvider(client, MODEL), stubber
        stubber.assert_no_pending_responses()


def _reply(text: str) -> dict:
    return {"output": {"message": {"role": "assistant", "content": [{"text": text}]}}, "stopReason": "end_turn",
            "usage": {"inputTokens": 10, "outputTokens": 20, "totalTokens": 30}, "metrics": {"latencyMs": 5}}


def _expect(stubber, prompt: str, text: str) -> None:
    stubber.add_response("converse", _reply(text), {
        "modelId": MODEL, "system": [{"text": SYSTEM_PROMPT}],
        "messages": [{"role": "user", "content": [{"text": prompt}]}], "inferenceConfig": ANY,
    })


def test_valid_answer_becomes_rules(bedrock):
    provider, stubber = bedrock
    rules_json = {"and": [{"field": "inactive_days", "op": ">", "value": 180}, {"field": "spend", "op": ">",
                                                                               "value": 5000}]}
    _expect(stubber, "lapsed big spenders", "Here you go:\n```json\n" + json.dumps(
        {"rules": rules_json, "explanation": "Lapsed customers who spent a lot."}) + "\n```")
    node, explanation = provider.rules_from_prompt("lapsed big spenders")
    assert node.to_json() == rules_json
    assert explanation == "Lapsed customers who spent a lot."


@pytest.mark.parametrize("text, reason", [
    (json.dumps({"rules": {"and": [{"field": "age", "op": ">", "value": 30}]}}), "not valid"),
    (json.dumps({"rules": {"and": [{"field": "spend", "op": "~", "value": 1}]}}), "not valid"),
    (json.dumps({"error": "favourite colour"}), "favourite colour"),
    ("I cannot help with that.", "did not answer with rules"),
    ("{not json}", "did not answer with rules"),
])
def test_invalid_answers_are_refused_not_passed_on(bedrock, text, reason):
    provider, stubber = bedrock
    _expect(stubber, "something", text)
    with pytest.raises(InvalidInput) as caught:
        provider.rules_from_prompt("something")
    assert caught.value.code == "prompt_not_understood"
    assert reason in caught.value.message


def test_bedrock_errors_are_503(bedrock):
    provider, stubber = bedrock
    stubber.add_client_error("converse", service_error_code="ThrottlingException", http_status_code=429)
    with pytest.raises(DependencyUnavailable):
        provider.rules_from_prompt("anything")


def test_provider_is_chosen_by_config():
    assert type(rules_provider(Settings(ai_provider="parser"))).__name__ == "ParserRulesProvider"
    chosen = rules_provider(Settings(ai_provider="bedrock", bedrock_model_id="my-model"))
    assert isinstance(chosen, BedrockRulesProvider) and chosen.model_id == "my-model"
