"""Reads template.yaml: functions, their HTTP routes and SQS sources, queues, and the intrinsics they use."""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import yaml

ACCOUNT_ID = "123456789012"
STACK_NAME = "mini-crm-local"


# libyaml's loader where PyYAML has it (its Linux wheels do): the same documents, eight times faster, and the
# template is read for every test's queues and environment.
class _CfnLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """YAML with CloudFormation's short-form tags turned into their long form."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


@dataclass(frozen=True)
class HttpRoute:
    method: str
    path: str

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The path parameters when this route serves the request, else None."""
        if self.method not in ("ANY", method.upper()):
            return None
        params: dict[str, str] = {}
        want, got = self.path.strip("/").split("/"), path.strip("/").split("/")
        for i, part in enumerate(want):
            if part.startswith("{") and part.endswith("+}"):
                rest = "/".join(got[i:])
                if not rest:
                    return None
                params[part[1:-2]] = rest
                return params
            if i >= len(got):
                return None
            if part.startswith("{") and part.endswith("}"):
                params[part[1:-1]] = got[i]
            elif part != got[i]:
                return None
        return params if len(got) == len(want) else None

    @property
    def key(self) -> str:
        """The route key, as API Gateway names the route (in events, and in its stage's RouteSettings)."""
        return f"{self.method} {self.path}"

    @property
    def specificity(self) -> tuple[int, int]:
        """API Gateway prefers exact segments over variables, and variables over greedy ones."""
        parts = self.path.strip("/").split("/")
        return (sum(1 for p in parts if not p.startswith("{")), -sum(1 for p in parts if p.endswith("+}")))


@dataclass(frozen=True)
class Throttle:
    """An HTTP API route's token bucket: rate tokens a second, up to burst (None: that side is not limited)."""
    rate: float | None
    burst: int | None


@dataclass(frozen=True)
class SqsSource:
    queue: str
    batch_size: int
    report_failures: bool
    max_concurrency: int | None


@dataclass(frozen=True)
class ScheduleSource:
    """A Schedule (EventBridge rule) or ScheduleV2 (EventBridge Scheduler) event: rate(...) or cron(...)."""
    name: str
    expression: str
    enabled: bool = True
    input: str | None = None


@dataclass
class FunctionSpec:
    name: str
    code_uri: Path
    handler: str
    timeout: int
    memory: int
    environment: dict[str, str]
    routes: list[HttpRoute] = field(default_factory=list)
    sqs_sources: list[SqsSource] = field(default_factory=list)
    function_url: bool = False
    schedules: list[ScheduleSource] = field(default_factory=list)
    # ReservedConcurrentExecutions: the most executions at once (None: no reservation, only the account's limit).
    reserved_concurrency: int | None = None


def function_arn(name: str) -> str:
    return f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:{name}"


@dataclass(frozen=True)
class CustomResource:
    """A CloudFormation custom resource served by one of the template's functions (ServiceToken: !GetAtt F.Arn)."""
    name: str
    type: str
    function: str
    properties: dict[str, Any]


@dataclass
class QueueSpec:
    name: str
    properties: dict[str, Any]

    @property
    def dead_letter_queue(self) -> str | None:
        target = (self.properties.get("RedrivePolicy") or {}).get("deadLetterTargetArn")
        if isinstance(target, dict) and "Fn::GetAtt" in target:
            return target["Fn::GetAtt"][0]
        return None


@dataclass
class Template:
    root: Path
    doc: dict[str, Any]
    parameters: dict[str, str]
    functions: dict[str, FunctionSpec]
    queues: dict[str, QueueSpec]
    layers: list[Path]
    custom_resources: list[CustomResource] = field(default_factory=list)
    # The HTTP API stage's throttling: each route key's own settings, and the default of every other route.
    route_throttles: dict[str, Throttle] = field(default_factory=dict)
    default_throttle: Throttle = Throttle(None, None)

    @cached_property
    def _routes_by_precedence(self) -> list[tuple[str, HttpRoute]]:
        return sorted(((name, route) for name, spec in self.functions.items() for route in spec.routes),
                      key=lambda item: item[1].specificity, reverse=True)

    def route(self, method: str, path: str) -> tuple[str, HttpRoute, dict[str, str]] | None:
        """The function API Gateway sends this request to, the route it matched, and the path parameters."""
        for name, route in self._routes_by_precedence:
            params = route.match(method, path)
            if params is not None:
                return name, route, params
        return None


@dataclass(frozen=True)
class LocalQueue:
    name: str
    url: str
    arn: str

    @classmethod
    def placeholder(cls, name: str) -> LocalQueue:
        return cls(name, f"http://localhost/{ACCOUNT_ID}/{name}", f"arn:aws:sqs:us-east-1:{ACCOUNT_ID}:{name}")


def load(path: Path, parameter_overrides: dict[str, str] | None = None,
         local_queues: dict[str, LocalQueue] | None = None) -> Template:
    """local_queues: where each queue (by logical id) lives locally, for `!Ref` and `!GetAtt` on it."""
    stat = path.stat()
    doc = copy.deepcopy(_parsed(str(path.resolve()), stat.st_mtime_ns, stat.st_size))
    parameters = {name: str(spec.get("Default", "")) for name, spec in (doc.get("Parameters") or {}).items()}
    parameters.update(parameter_overrides or {})
    # A resource whose Condition is false is not created, as CloudFormation would not create it.
    deciding = Resolver(parameters, {}, doc.get("Conditions") or {})
    resources = {name: r for name, r in (doc.get("Resources") or {}).items()
                 if "Condition" not in r or deciding.condition(r["Condition"])}
    queues = {name: QueueSpec(name, r.get("Properties") or {})
              for name, r in resources.items() if r.get("Type") == "AWS::SQS::Queue"}
    function_names = {name for name, r in resources.items() if r.get("Type") == "AWS::Serverless::Function"}
    resolver = Resolver(parameters, local_queues or {name: LocalQueue.placeholder(name) for name in queues},
                        doc.get("Conditions") or {}, function_names)
    globals_fn = (doc.get("Globals") or {}).get("Function") or {}
    functions = {name: _function(path.parent, name, r.get("Properties") or {}, globals_fn, resolver)
                 for name, r in resources.items() if name in function_names}
    layers = [(path.parent / r["Properties"]["ContentUri"]).resolve()
              for r in resources.values() if r.get("Type") == "AWS::Serverless::LayerVersion"]
    custom = [resource for name, r in resources.items()
              if (resource := _custom_resource(name, r, function_names, resolver)) is not None]
    default_throttle, route_throttles = _http_api_throttling(resources, resolver)
    return Template(path.parent, doc, parameters, functions, queues, layers, custom, route_throttles, default_throttle)


@lru_cache(maxsize=16)
def _parsed(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    """The file's YAML, read again only when it changes (each test's queues and environment read the template)."""
    return yaml.load(Path(path).read_text(), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


def _http_api_throttling(resources: dict[str, Any], resolver: Resolver) -> tuple[Throttle, dict[str, Throttle]]:
    """The stage throttling of the template's HttpApi (the runner serves every route on one port, as one API)."""
    apis = [r.get("Properties") or {} for r in resources.values() if r.get("Type") == "AWS::Serverless::HttpApi"]
    throttled = [props for props in apis if "DefaultRouteSettings" in props or "RouteSettings" in props]
    if len(throttled) > 1:
        raise ValueError("the offline runner throttles one AWS::Serverless::HttpApi; this template throttles several")
    props = throttled[0] if throttled else {}
    default = _throttle(props.get("DefaultRouteSettings") or {}, Throttle(None, None), resolver)
    # What a route's settings leave unset, the runner takes from the default (this template sets both everywhere).
    routes = {str(key): _throttle(settings or {}, default, resolver)
              for key, settings in (resolver.resolve(props.get("RouteSettings")) or {}).items()}
    return default, routes


def _throttle(settings: dict[str, Any], fallback: Throttle, resolver: Resolver) -> Throttle:
    rate = resolver.resolve(settings.get("ThrottlingRateLimit"))
    burst = resolver.resolve(settings.get("ThrottlingBurstLimit"))
    return Throttle(fallback.rate if rate is None else float(rate), fallback.burst if burst is None else int(burst))


def _custom_resource(name: str, resource: dict[str, Any], functions: set[str],
                     resolver: Resolver) -> CustomResource | None:
    kind = str(resource.get("Type", ""))
    if not (kind.startswith("Custom::") or kind == "AWS::CloudFormation::CustomResource"):
        return None
    props = resource.get("Properties") or {}
    token = props.get("ServiceToken")
    if not (isinstance(token, dict) and list(token) == ["Fn::GetAtt"] and token["Fn::GetAtt"][0] in functions
            and token["Fn::GetAtt"][1] == "Arn"):
        return None
    # CloudFormation hands a custom resource its properties resolved, scalars as strings.
    return CustomResource(name, kind, token["Fn::GetAtt"][0], _as_strings(resolver.resolve_deep(props)))


def _as_strings(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _as_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_strings(v) for v in value]
    if isinstance(value, bool):
        return str(value).lower()
    return value if value is None else str(value)


def _function(root: Path, name: str, props: dict[str, Any], globals_fn: dict[str, Any],
              resolver: Resolver) -> FunctionSpec:
    variables = {**((globals_fn.get("Environment") or {}).get("Variables") or {}),
                 **((props.get("Environment") or {}).get("Variables") or {})}
    spec = FunctionSpec(
        name=name,
        code_uri=(root / props.get("CodeUri", globals_fn.get("CodeUri", "."))).resolve(),
        handler=props.get("Handler", globals_fn.get("Handler", "app.handler")),
        timeout=int(props.get("Timeout", globals_fn.get("Timeout", 3))),
        memory=int(props.get("MemorySize", globals_fn.get("MemorySize", 128))),
        environment={k: str(value) for k, v in variables.items() if (value := resolver.resolve(v)) is not None},
        function_url="FunctionUrlConfig" in props,
    )
    key = "ReservedConcurrentExecutions"
    reserved = resolver.resolve(props.get(key, globals_fn.get(key)))
    if reserved is not None:
        spec.reserved_concurrency = int(reserved)
    for event_name, event in (props.get("Events") or {}).items():
        event_props = event.get("Properties") or {}
        if event.get("Type") in ("Schedule", "ScheduleV2"):
            v2 = event["Type"] == "ScheduleV2"
            enabled = resolver.resolve(event_props.get("Enabled", True))
            state = str(resolver.resolve(event_props.get("State", "ENABLED"))).upper()
            spec.schedules.append(ScheduleSource(
                name=str(event_name),
                expression=str(resolver.resolve(event_props.get("ScheduleExpression" if v2 else "Schedule", ""))),
                enabled=str(enabled).lower() != "false" and state != "DISABLED",
                input=resolver.resolve(event_props.get("Input")),
            ))
        if event.get("Type") == "HttpApi":
            spec.routes.append(HttpRoute(str(event_props.get("Method", "ANY")).upper(), event_props["Path"]))
        elif event.get("Type") == "SQS":
            queue_ref = event_props["Queue"]
            queue = queue_ref["Fn::GetAtt"][0] if isinstance(queue_ref, dict) else str(queue_ref)
            scaling = event_props.get("ScalingConfig") or {}
            max_concurrency = scaling.get("MaximumConcurrency")
            spec.sqs_sources.append(SqsSource(
                queue=queue,
                batch_size=int(event_props.get("BatchSize", 10)),
                report_failures="ReportBatchItemFailures" in (event_props.get("FunctionResponseTypes") or []),
                max_concurrency=int(resolver.resolve(max_concurrency)) if max_concurrency is not None else None,
            ))
    return spec


class Resolver:
    """The intrinsics a function's environment uses, resolved to local values."""

    def __init__(self, parameters: dict[str, str], queues: dict[str, LocalQueue],
                 conditions: dict[str, Any] | None = None, functions: set[str] | frozenset[str] = frozenset()):
        self.parameters = parameters
        self.queues = queues
        self.conditions = conditions or {}
        self.functions = functions
        self.pseudo = {"AWS::Region": "us-east-1", "AWS::AccountId": ACCOUNT_ID, "AWS::Partition": "aws",
                       "AWS::StackName": STACK_NAME, "AWS::URLSuffix": "amazonaws.com"}

    def resolve(self, value: Any) -> Any:
        if not isinstance(value, dict) or len(value) != 1:
            return value
        (fn, arg), = value.items()
        if fn == "Ref":
            return self._ref(arg)
        if fn == "Fn::GetAtt":
            return self._get_att(*arg)
        if fn == "Fn::Sub":
            text, names = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
            return re.sub(r"\$\{([^}!]+)\}", lambda m: str(self._sub_name(m.group(1), names)), text)
        if fn == "Fn::Join":
            separator, parts = arg
            return separator.join(str(self.resolve(p)) for p in parts)
        if fn == "Fn::If":
            condition, when_true, when_false = arg
            return self.resolve(when_true if self.condition(condition) else when_false)
        if fn == "Fn::Select":
            index, items = arg
            items = self.resolve(items)
            return self.resolve(items[int(self.resolve(index))]) if isinstance(items, list) else value
        if fn == "Fn::Split":
            separator, text = arg
            return str(self.resolve(text)).split(separator)
        return value

    def resolve_deep(self, value: Any) -> Any:
        resolved = self.resolve(value)
        if resolved is not value:
            return self.resolve_deep(resolved) if isinstance(resolved, (dict, list)) else resolved
        if isinstance(value, dict):
            return {k: self.resolve_deep(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve_deep(v) for v in value]
        return value

    def condition(self, name: str) -> bool:
        return self._truth(self.conditions.get(name, False))

    def _truth(self, expression: Any) -> bool:
        if isinstance(expression, dict) and len(expression) == 1:
            (fn, arg), = expression.items()
            if fn == "Condition":
                return self.condition(arg)
            if fn == "Fn::Equals":
                return str(self.resolve(arg[0])) == str(self.resolve(arg[1]))
            if fn == "Fn::Not":
                return not self._truth(arg[0])
            if fn == "Fn::And":
                return all(self._truth(a) for a in arg)
            if fn == "Fn::Or":
                return any(self._truth(a) for a in arg)
        return str(self.resolve(expression)).lower() == "true"

    def _sub_name(self, name: str, names: dict[str, Any]) -> Any:
        if name in names:
            return self.resolve(names[name])
        if "." in name:
            return self._get_att(*name.split(".", 1))
        return self._ref(name)

    def _ref(self, name: str) -> Any:
        if name in self.parameters:
            return self.parameters[name]
        if name in self.pseudo:
            return self.pseudo[name]
        if name == "AWS::NoValue":
            return None
        if name in self.queues:
            return self.queues[name].url
        return name

    def _get_att(self, name: str, attribute: str) -> Any:
        if name in self.queues:
            queue = self.queues[name]
            return {"Arn": queue.arn, "QueueName": queue.name, "QueueUrl": queue.url}[attribute]
        if name in self.functions and attribute == "Arn":
            return function_arn(name)
        return f"{name}.{attribute}"
