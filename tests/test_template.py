"""template.yaml is valid CloudFormation and wires what the offline runner serves."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from offline import template
from tests.conftest import TEMPLATE, load_function


def test_cfn_lint_is_clean():
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run([str(cfn_lint), str(TEMPLATE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_queue_has_a_dead_letter_queue_and_every_consumer_reports_partial_failures():
    stack = template.load(TEMPLATE)
    work_queues = [q for q in stack.queues.values() if not q.name.endswith("DLQ")]
    assert work_queues and all(q.dead_letter_queue in stack.queues for q in work_queues)
    sources = [s for f in stack.functions.values() for s in f.sqs_sources]
    assert {s.queue for s in sources} == {q.name for q in work_queues}
    assert all(s.report_failures and s.max_concurrency for s in sources)


def test_every_function_folder_is_in_the_template():
    stack = template.load(TEMPLATE)
    folders = {p.name for p in (TEMPLATE.parent / "functions").iterdir() if (p / "app.py").exists()}
    assert folders == {Path(f.code_uri).name for f in stack.functions.values()}


def _app_routes(app) -> list[tuple[str, str]]:
    """(method, a concrete path) for every route an app serves; a mounted folder by one file in it."""
    from fastapi.routing import iter_route_contexts
    from starlette.routing import Mount

    served = []
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, Mount):
            served.append(("GET", f"{route.path}/any-file"))
        else:
            path = re.sub(r"\{[^}]+\}", "0" * 24, route.path)
            served += [(method, path) for method in sorted(route.methods - {"HEAD"})]
    return served


def test_every_app_route_is_routed_to_its_function_and_every_template_route_reaches_one():
    stack = template.load(TEMPLATE)
    for name, spec in stack.functions.items():
        if not spec.routes:
            continue
        served = _app_routes(load_function(Path(spec.code_uri).name).app)
        for method, path in served:
            routed = stack.route(method, path)
            assert routed and routed[0] == name, f"{method} {path} of {name} reaches {routed and routed[0]}"
        for route in spec.routes:
            assert any(route.match(method, path) is not None for method, path in served), (
                f"{route.method} {route.path} of {name} reaches no route of its app")


def sqs_policy_queues(function: str, policy: str = "SQSSendMessagePolicy") -> set[str]:
    """The queues (logical ids) a function's SAM policy templates of this kind name."""
    props = template.load(TEMPLATE).doc["Resources"][function]["Properties"]
    return {p[policy]["QueueName"]["Fn::GetAtt"][0] for p in props.get("Policies", [])
            if isinstance(p, dict) and policy in p}


def _named(value) -> set[str]:
    """The resources a value refers to (!Ref, !GetAtt), on either side of an !If."""
    if isinstance(value, dict) and "Fn::If" in value:
        return set().union(*(_named(v) for v in value["Fn::If"][1:]))
    if isinstance(value, dict) and "Ref" in value:
        return {value["Ref"]} - {"AWS::NoValue"}
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return {value["Fn::GetAtt"][0]}
    return set()


def test_every_queue_url_a_function_is_given_is_one_its_policies_let_it_use():
    doc = template.load(TEMPLATE).doc["Resources"]
    for name, resource in doc.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        variables = (props.get("Environment") or {}).get("Variables") or {}
        named = {queue for key, value in variables.items() if key.startswith("SQS_") and key.endswith("_URL")
                 for queue in _named(value)}
        checked = {queue for p in props["Policies"] if isinstance(p, dict) and "Statement" in p
                   for statement in p["Statement"] if statement["Action"] == ["sqs:GetQueueAttributes"]
                   for arn in statement["Resource"] for queue in _named(arn)}
        assert named <= sqs_policy_queues(name) | checked, name
        assert sqs_policy_queues(name) <= named, f"{name} may send to a queue it is not told of"


SECRET_POLICIES = {"MONGO_URI_SECRET_NAME": "ReadMongoUriSecretPolicy", "JWT_SECRET_NAME": "ReadJwtSecretPolicy",
                   "GOOGLE_CLIENT_SECRET_NAME": "ReadGoogleClientSecretPolicy",
                   "VENDOR_API_KEY_NAME": "ReadVendorApiKeySecretPolicy",
                   "WEBHOOK_SECRET_NAME": "ReadWebhookSecretPolicy",
                   "UNSUBSCRIBE_SECRET_NAME": "ReadUnsubscribeSecretPolicy"}


def test_each_function_may_read_exactly_the_secrets_it_is_told_of():
    for name, resource in template.load(TEMPLATE).doc["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        told = {SECRET_POLICIES[key] for key in (props.get("Environment") or {}).get("Variables") or {}
                if key in SECRET_POLICIES}
        readable = {p["Ref"] for p in props["Policies"] if isinstance(p, dict) and p.get("Ref") in
                    SECRET_POLICIES.values()}
        assert told == readable, name
    fan_out = template.load(TEMPLATE).functions["CampaignFanoutFunction"].environment
    assert "UNSUBSCRIBE_SECRET_NAME" in fan_out, "every recipient's unsubscribe link is signed at the fan-out"


SES_RESOURCES = ("EmailConfigurationSet", "EmailEventDestination", "DeliveryEventRule", "DeliveryEventQueuePolicy")


def _ses_statements(value) -> list[dict]:
    """Every policy statement anywhere in a template fragment that names an SES action."""
    if isinstance(value, list):
        return [s for item in value for s in _ses_statements(item)]
    if not isinstance(value, dict):
        return []
    actions = value.get("Action")
    actions = [actions] if isinstance(actions, str) else actions if isinstance(actions, list) else []
    own = [value] if any(str(a).lower().startswith("ses:") for a in actions) else []
    return own + [s for item in value.values() for s in _ses_statements(item)]


def test_e_mail_resources_exist_with_the_ses_channel_only_and_the_event_path_in_every_stack():
    doc = template.load(TEMPLATE).doc
    assert doc["Conditions"]["UseSes"] == {"Fn::Equals": [{"Ref": "Channel"}, "ses"]}
    assert all(doc["Resources"][name]["Condition"] == "UseSes" for name in SES_RESOURCES)
    # The queue and its consumer are there whatever the channel: switching to SES adds no function, and a local
    # run with CHANNEL=ses has them.
    for name in ("DeliveryEventQueue", "DeliveryEventDLQ", "DeliveryEventDLQAlarm", "DeliveryEventsFunction"):
        assert "Condition" not in doc["Resources"][name], name
    assert {"DeliveryEventQueue", "DeliveryEventDLQ"} <= set(template.load(TEMPLATE).queues)


# The functions that send through the campaign channel: the send step, and the API function of test sends (its own
# function, so that CampaignsFunction and every other API function hold no channel rights).
SENDERS = ("CampaignSendFunction", "TestSendFunction")
# What the channel is told: crm.channels.get_channel and the channels read these, and nothing else of a function's.
CHANNEL_SETTINGS = ("VENDOR_API_KEY_NAME", "VENDOR_URL", "VENDOR_MAX_PER_SECOND", "CHANNEL", "SES_FROM_ADDRESS",
                    "SES_CONFIGURATION_SET", "SES_MAX_PER_SECOND", "SEND_CONCURRENCY", "SES_ENDPOINT_URL")


def test_only_the_senders_may_send_e_mail_as_the_identity_through_the_stacks_configuration_set():
    resources = template.load(TEMPLATE).doc["Resources"]
    assert [s for name, r in resources.items() if name not in SENDERS for s in _ses_statements(r)] == []
    for sender in SENDERS:
        send = resources[sender]["Properties"]
        [granted] = [p["Fn::If"] for p in send["Policies"] if isinstance(p, dict) and "Fn::If" in p]
        condition, allowed, otherwise = granted
        assert (condition, otherwise) == ("UseSes", {"Ref": "AWS::NoValue"}), sender
        [statement] = allowed["Statement"]
        assert statement == {"Effect": "Allow", "Action": ["ses:SendEmail"], "Resource": [
            {"Fn::Sub": "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/${SesIdentity}"},
            {"Fn::Sub": "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:"
                        "configuration-set/${EmailConfigurationSet}"}]}, sender
        assert _ses_statements(send) == [statement], sender
        variables = send["Environment"]["Variables"]
        # The set it may send through is the set it names, and the one whose events the rule forwards.
        assert variables["SES_CONFIGURATION_SET"] == {"Fn::If": ["UseSes", {"Ref": "EmailConfigurationSet"}, ""]}
        assert variables["SES_FROM_ADDRESS"] == {"Ref": "SesFromAddress"}
        assert variables["SES_MAX_PER_SECOND"] == {"Ref": "SesMaxPerSecond"}
    for function in (*SENDERS, "CampaignsFunction", "ReconcilerFunction"):
        assert resources[function]["Properties"]["Environment"]["Variables"]["CHANNEL"] == {"Ref": "Channel"}


def test_a_test_send_goes_through_the_channel_exactly_as_the_send_function_sends():
    """Review finding: test sends were served by CampaignsFunction, which has no channel (a 503 in AWS and offline);
    they have their own function, told of the channel as the send function is, and the campaigns one stays without."""
    for parameters in ({}, {"Channel": "ses", "SesFromAddress": "a@shop.example", "SesIdentity": "shop.example"},
                       {"VendorUrl": "https://vendor.example/send"}):
        functions = template.load(TEMPLATE, parameters).functions
        send, test_send = functions["CampaignSendFunction"].environment, functions["TestSendFunction"].environment
        assert {key: test_send[key] for key in CHANNEL_SETTINGS} == {key: send[key] for key in CHANNEL_SETTINGS}
        # Its sample unsubscribe link points where the recipients' own do.
        assert test_send["PUBLIC_URL"] == functions["CampaignFanoutFunction"].environment["PUBLIC_URL"]
        campaigns = functions["CampaignsFunction"].environment
        assert [key for key in CHANNEL_SETTINGS if key != "CHANNEL" and campaigns.get(key)] == [], parameters
    resources = template.load(TEMPLATE).doc["Resources"]
    policies = resources["TestSendFunction"]["Properties"]["Policies"]
    assert [p for p in policies if "Fn::If" not in p] == [{"Ref": "ReadMongoUriSecretPolicy"},
                                                          {"Ref": "ReadJwtSecretPolicy"},
                                                          {"Ref": "ReadVendorApiKeySecretPolicy"}]


def test_the_vendor_key_is_read_by_the_senders_the_reconciler_and_the_mock_vendor_only():
    resources = template.load(TEMPLATE).doc["Resources"]
    readers = {name for name, r in resources.items() if r["Type"] == "AWS::Serverless::Function"
               and {"Ref": "ReadVendorApiKeySecretPolicy"} in r["Properties"]["Policies"]}
    # The reconciler asks the vendor about a message with no receipt; the mock vendor checks the key it is sent.
    assert readers == {*SENDERS, "ReconcilerFunction", "VendorFunction"}


def test_a_test_send_reaches_its_own_function_and_every_other_campaigns_path_the_campaigns_one():
    stack = template.load(TEMPLATE)
    # Every method of its path: one it does not serve is its app's 405, not the campaigns app's 404.
    assert stack.route("POST", "/api/campaigns/test-send")[0] == stack.route("TRACE", "/api/campaigns/test-send")[0] \
        == "TestSendFunction"
    assert [route.key for route in stack.functions["TestSendFunction"].routes] == ["ANY /api/campaigns/test-send"]
    for method, path in (("GET", "/api/campaigns/0123456789abcdef01234567"), ("POST", "/api/campaigns/test-send/x"),
                         ("POST", "/api/campaigns/0123456789abcdef01234567/pause"), ("POST", "/api/campaigns")):
        assert stack.route(method, path)[0] == "CampaignsFunction", (method, path)


def _matches(pattern, event) -> bool:
    """EventBridge's matching, for the part of it a rule of exact values uses: every key of the pattern is in the
    event, and a list of values matches a value of the event (or of an array in the event) that is in it."""
    if isinstance(pattern, dict):
        return isinstance(event, dict) and all(key in event and _matches(value, event[key])
                                               for key, value in pattern.items())
    values = event if isinstance(event, list) else [event]
    return any(value in pattern for value in values)


def test_ses_events_of_this_stacks_configuration_set_reach_the_delivery_event_consumer():
    import json

    from crm.channels.ses_events import EFFECTS

    stack = template.load(TEMPLATE)
    resources = stack.doc["Resources"]
    destination = resources["EmailEventDestination"]["Properties"]
    assert destination["ConfigurationSetName"] == {"Ref": "EmailConfigurationSet"}
    assert destination["EventDestination"]["Enabled"] is True
    assert destination["EventDestination"]["EventBridgeDestination"]["EventBusArn"]["Fn::Sub"].endswith(
        ":event-bus/default"), "SES publishes to the default bus"
    condition, tracking, untracked = destination["EventDestination"]["MatchingEventTypes"]["Fn::If"]
    assert condition == "TracksClicks"
    acted_on = {kind[0].lower() + kind[1:].replace(" ", "") for kind in [*EFFECTS, "Bounce"]}
    assert acted_on <= set(untracked), "every kind of event the consumer acts on is published"
    # With our own tracked links SES publishes no click (and so rewrites no link): a click is counted once.
    assert set(tracking) == set(untracked) - {"click"} and "click" in untracked

    rule = resources["DeliveryEventRule"]["Properties"]
    [target] = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["DeliveryEventQueue", "Arn"]}
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["DeliveryEventDLQ", "Arn"]}
    consumers = [name for name, spec in stack.functions.items()
                 for source in spec.sqs_sources if source.queue == "DeliveryEventQueue"]
    assert consumers == ["DeliveryEventsFunction"]
    assert stack.functions["DeliveryEventsFunction"].code_uri.name == "delivery_events"

    # The pattern, with the configuration set named as the fixtures name theirs, matches every SES event of them
    # (AWS's documented shapes) and none of another configuration set's or another source's.
    named = '"mini-crm-prod"'
    pattern = json.loads(json.dumps(rule["EventPattern"]).replace('{"Ref": "EmailConfigurationSet"}', named))
    fixtures = [json.loads(path.read_text()) for path in sorted((TEMPLATE.parent / "events" / "ses").glob("*.json"))]
    assert len(fixtures) >= 9 and all(_matches(pattern, event) for event in fixtures)
    other_set = json.loads(json.dumps(fixtures[0]).replace(named, '"someone-else"'))
    assert not _matches(pattern, other_set)
    assert not _matches(pattern, {**fixtures[0], "source": "aws.events"})


def test_only_the_stacks_rule_may_put_events_on_the_delivery_event_queue():
    resources = template.load(TEMPLATE).doc["Resources"]
    policy = resources["DeliveryEventQueuePolicy"]["Properties"]
    assert policy["Queues"] == [{"Ref": "DeliveryEventQueue"}, {"Ref": "DeliveryEventDLQ"}]
    [statement] = policy["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow" and statement["Action"] == "sqs:SendMessage"
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Resource"] == [{"Fn::GetAtt": ["DeliveryEventQueue", "Arn"]},
                                     {"Fn::GetAtt": ["DeliveryEventDLQ", "Arn"]}]
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["DeliveryEventRule", "Arn"]}}}


def test_unsubscribe_links_lead_to_the_unsubscribe_function_on_the_public_url():
    stack = template.load(TEMPLATE)
    assert stack.route("GET", "/u/abc")[0] == stack.route("POST", "/u/abc")[0] == "UnsubscribeFunction"
    assert stack.route("DELETE", "/u/abc") is None
    assert stack.functions["CampaignFanoutFunction"].environment["PUBLIC_URL"] == (
        "https://HttpApi.execute-api.us-east-1.amazonaws.com"), "the HTTP API's own URL by default"
    custom = template.load(TEMPLATE, {"PublicUrl": "https://crm.shop.example.com"})
    assert custom.functions["CampaignFanoutFunction"].environment["PUBLIC_URL"] == "https://crm.shop.example.com"


def test_tracked_links_lead_to_a_function_that_may_only_queue_clicks_and_the_senders_sign_them():
    stack = template.load(TEMPLATE)
    assert stack.route("GET", "/c/abc")[0] == "ClickRedirectFunction"
    assert stack.route("POST", "/c/abc") is None
    redirect = stack.doc["Resources"]["ClickRedirectFunction"]["Properties"]
    # No database: no MongoDB secret, nothing but the signing key and the clicks queue.
    clicks_queue = {"SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": ["ClickQueue", "QueueName"]}}}
    assert redirect["Policies"] == [{"Ref": "ReadUnsubscribeSecretPolicy"}, clicks_queue]
    assert set(redirect["Environment"]["Variables"]) == {"UNSUBSCRIBE_SECRET_NAME", "SQS_CLICK_QUEUE_URL",
                                                         "SQS_TIMEOUT_SECONDS"}
    [source] = stack.functions["ClicksFunction"].sqs_sources
    assert source.queue == "ClickQueue" and stack.queues["ClickQueue"].dead_letter_queue == "ClickDLQ"
    send, events = stack.functions["CampaignSendFunction"], stack.functions["DeliveryEventsFunction"]
    assert send.environment["TRACK_CLICKS"] == events.environment["TRACK_CLICKS"] == "true"
    # The send function signs them with the unsubscribe links' key, on the URL the unsubscribe links are on.
    assert "UNSUBSCRIBE_SECRET_NAME" in send.environment
    assert send.environment["PUBLIC_URL"] == stack.functions["CampaignFanoutFunction"].environment["PUBLIC_URL"]
    untracked = template.load(TEMPLATE, {"TrackClicks": "false"}).functions
    assert untracked["CampaignSendFunction"].environment["TRACK_CLICKS"] == "false"


MOCK_VENDOR = {"VendorFunction", "VendorReceiptsFunction", "VendorReceiptQueue", "VendorReceiptDLQ"}


def test_the_mock_vendor_is_deployed_only_where_it_is_the_channel():
    """Review finding: the mock vendor and its signed-receipt generator were in every stack, with the real webhook
    secret: whoever held the vendor key could have the stack sign receipts for logs it never sent."""
    def mock_vendor_in(**parameters: str) -> set[str]:
        stack = template.load(TEMPLATE, parameters)
        return MOCK_VENDOR & (set(stack.functions) | set(stack.queues))

    assert mock_vendor_in() == MOCK_VENDOR
    assert mock_vendor_in(Channel="ses", SesFromAddress="a@shop.example", SesIdentity="shop.example") == set()
    assert mock_vendor_in(VendorUrl="https://vendor.example/send") == set()
    meta = template.load(TEMPLATE, {"Channel": "ses"}).functions["MetaFunction"]
    assert meta.environment["SQS_VENDOR_RECEIPT_QUEUE_URL"] == ""


def test_a_deployed_stack_is_staging_or_production():
    """Review finding: Stage=development deployed a stack that handed admin tokens to anyone."""
    assert template.load(TEMPLATE).doc["Parameters"]["Stage"]["AllowedValues"] == ["production", "staging"]


def _resources(**parameters: str) -> dict:
    return template.load(TEMPLATE, parameters).doc["Resources"]


def test_every_function_logs_to_its_own_group_kept_log_retention_days():
    """Review finding: log groups had no retention, so what a log line said of a person stayed for ever."""
    resources = _resources()
    functions = {name: r for name, r in resources.items() if r["Type"] == "AWS::Serverless::Function"}
    groups = {name: r["Properties"]["LoggingConfig"]["LogGroup"]["Ref"] for name, r in functions.items()}
    assert len(set(groups.values())) == len(functions) == 24
    for function, group in groups.items():
        resource = resources[group]
        assert resource["Type"] == "AWS::Logs::LogGroup", function
        assert resource["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, function
        assert resource.get("Condition") == functions[function].get("Condition"), f"{group} lives as {function} does"
    names = [resources[group]["Properties"]["LogGroupName"] for group in groups.values()]
    assert len(set(map(str, names))) == len(names)
    parameter = template.load(TEMPLATE).doc["Parameters"]["LogRetentionDays"]
    assert parameter["Default"] == 30 and 30 in parameter["AllowedValues"]


PUBLIC_PREFIXES = ("/u/", "/c/")


def test_every_route_is_throttled_and_the_public_ones_more_tightly():
    stack = template.load(TEMPLATE)
    parameters = stack.parameters
    assert stack.default_throttle == template.Throttle(float(parameters["ApiRateLimit"]),
                                                       int(parameters["ApiBurstLimit"]))
    route_keys = {route.key for spec in stack.functions.values() for route in spec.routes}
    # A RouteSettings key that names no route of the API fails the deploy.
    assert set(stack.route_throttles) <= route_keys
    public = {key for key in route_keys if key.split(" ", 1)[1].startswith(PUBLIC_PREFIXES)}
    assert public and public <= set(stack.route_throttles), "each public route has its own, smaller bucket"
    for key in public:
        assert stack.route_throttles[key] == template.Throttle(float(parameters["PublicRateLimit"]),
                                                               int(parameters["PublicBurstLimit"]))
        assert stack.route_throttles[key].rate < stack.default_throttle.rate
        assert stack.route_throttles[key].burst < stack.default_throttle.burst
    custom = template.load(TEMPLATE, {"PublicRateLimit": "5", "ApiBurstLimit": "7"})
    assert custom.route_throttles["POST /u/{token}"] == template.Throttle(5.0, int(parameters["PublicBurstLimit"]))
    assert custom.default_throttle.burst == 7


def test_every_function_behind_the_api_or_a_url_has_reserved_concurrency_and_zero_means_none():
    stack = template.load(TEMPLATE)
    api = int(stack.parameters["ApiReservedConcurrency"])
    receipt = int(stack.parameters["ReceiptReservedConcurrency"])
    for name, spec in stack.functions.items():
        if name == "ReceiptsFunction":
            assert spec.reserved_concurrency == receipt
        elif spec.routes or spec.function_url:
            assert spec.reserved_concurrency == api, name
        else:
            # Queue consumers are bounded by their ScalingConfig; a schedule or the deploy invokes the others.
            assert spec.reserved_concurrency is None, name
    unreserved = template.load(TEMPLATE, {"ApiReservedConcurrency": "0", "ReceiptReservedConcurrency": "0"})
    assert all(spec.reserved_concurrency is None for spec in unreserved.functions.values())


def test_the_health_check_is_told_of_every_queue_it_checks():
    """Review finding: the clicks queue was missing from the health function, so /health answered 503 in every
    stack (its check names each `sqs_*_queue_url` setting)."""
    from crm.config import Settings

    checked = {name.upper() for name in Settings.model_fields
               if name.startswith("sqs_") and name.endswith("_queue_url")}
    meta = template.load(TEMPLATE).functions["MetaFunction"]
    assert checked <= set(meta.environment), checked - set(meta.environment)
