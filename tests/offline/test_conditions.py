"""Resources with a Condition exist locally as they would in AWS: only when the condition holds for the parameters."""
from __future__ import annotations

import textwrap

from offline import template

CONDITIONAL = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  Feature: {Type: String, Default: "off", AllowedValues: ["on", "off"]}
Conditions:
  FeatureOn: !Equals [!Ref Feature, "on"]
Resources:
  AlwaysQueue:
    Type: AWS::SQS::Queue
  FeatureQueue:
    Type: AWS::SQS::Queue
    Condition: FeatureOn
  Always:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: always/
      Handler: app.handler
      Environment:
        Variables:
          FEATURE_QUEUE_URL: !If [FeatureOn, !Ref FeatureQueue, !Ref AWS::NoValue]
      Events:
        Queue: {Type: SQS, Properties: {Queue: !GetAtt AlwaysQueue.Arn}}
  FeatureConsumer:
    Type: AWS::Serverless::Function
    Condition: FeatureOn
    Properties:
      CodeUri: feature/
      Handler: app.handler
      Events:
        Queue: {Type: SQS, Properties: {Queue: !GetAtt FeatureQueue.Arn}}
        Page: {Type: HttpApi, Properties: {Path: /feature, Method: GET}}
"""


def test_a_resource_whose_condition_is_false_is_not_there(tmp_path):
    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent(CONDITIONAL))
    off = template.load(path)
    assert set(off.queues) == {"AlwaysQueue"} and set(off.functions) == {"Always"}
    assert off.route("GET", "/feature") is None and "FEATURE_QUEUE_URL" not in off.functions["Always"].environment

    on = template.load(path, {"Feature": "on"})
    assert set(on.queues) == {"AlwaysQueue", "FeatureQueue"} and set(on.functions) == {"Always", "FeatureConsumer"}
    assert on.route("GET", "/feature")[0] == "FeatureConsumer"
    assert [s.queue for s in on.functions["FeatureConsumer"].sqs_sources] == ["FeatureQueue"]
    assert on.functions["Always"].environment["FEATURE_QUEUE_URL"].endswith("/FeatureQueue")
