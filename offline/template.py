"""Reads template.yaml: functions, their HTTP routes and SQS sources, queues, and the intrinsics they use."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

ACCOUNT_ID = "123456789012"


class _CfnLoader(yaml.SafeLoader):
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
    def specificity(self) -> tuple[int, int]:
        """API Gateway prefers exact segments over variables, and variables over greedy ones."""
        parts = self.path.strip("/").split("/")
        return (sum(1 for p in parts if not p.startswith("{")), -sum(1 for p in parts if p.endswith("+}")))


@dataclass(frozen=True)
class SqsSource:
    queue: str
    batch_size: int
    report_failures: bool
    max_concurrency: int | None


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
    doc = yaml.load(path.read_text(), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    resources = doc.get("Resources", {})
    parameters = {name: str(spec.get("Default", "")) for name, spec in (doc.get("Parameters") or {}).items()}
    parameters.update(parameter_overrides or {})
    queues = {name: QueueSpec(name, r.get("Properties") or {})
              for name, r in resources.items() if r.get("Type") == "AWS::SQS::Queue"}
    resolver = Resolver(parameters, local_queues or {name: LocalQueue.placeholder(name) for name in queues})
    globals_fn = (doc.get("Globals") or {}).get("Function") or {}
    functions = {name: _function(path.parent, name, r.get("Properties") or {}, globals_fn, resolver)
                 for name, r in resources.items() if r.get("Type") == "AWS::Serverless::Function"}
    layers = [(path.parent / r["Properties"]["ContentUri"]).resolve()
              for r in resources.values() if r.get("Type") == "AWS::Serverless::LayerVersion"]
    return Template(path.parent, doc, parameters, functions, queues, layers)


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
        environment={k: str(resolver.resolve(v)) for k, v in variables.items()},
        function_url="FunctionUrlConfig" in props,
    )
    for event in (props.get("Events") or {}).values():
        event_props = event.get("Properties") or {}
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

    def __init__(self, parameters: dict[str, str], queues: dict[str, LocalQueue]):
        self.parameters = parameters
        self.queues = queues
        self.pseudo = {"AWS::Region": "us-east-1", "AWS::AccountId": ACCOUNT_ID, "AWS::Partition": "aws",
                       "AWS::StackName": "mini-crm-local", "AWS::URLSuffix": "amazonaws.com"}

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
        return value

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
        if name in self.queues:
            return self.queues[name].url
        return name

    def _get_att(self, name: str, attribute: str) -> Any:
        if name in self.queues:
            queue = self.queues[name]
            return {"Arn": queue.arn, "QueueName": queue.name, "QueueUrl": queue.url}[attribute]
        return f"{name}.{attribute}"
