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


def test_every_queue_url_a_function_is_given_is_one_its_policies_let_it_use():
    doc = template.load(TEMPLATE).doc["Resources"]
    for name, resource in doc.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        variables = (props.get("Environment") or {}).get("Variables") or {}
        named = {value["Ref"] for key, value in variables.items() if key.startswith("SQS_") and key.endswith("_URL")}
        checked = {arn["Fn::GetAtt"][0] for p in props["Policies"] if isinstance(p, dict) and "Statement" in p
                   for statement in p["Statement"] if statement["Action"] == ["sqs:GetQueueAttributes"]
                   for arn in statement["Resource"]}
        assert named <= sqs_policy_queues(name) | checked, name
        assert sqs_policy_queues(name) <= named, f"{name} may send to a queue it is not told of"
