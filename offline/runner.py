"""The offline runner: every HttpApi route on one port, every SQS event source polled, every schedule ticking,
every custom resource created at start, one log stream; and, when asked, the faults AWS would inflict."""
from __future__ import annotations

import math
import os
import re
import sys
import threading
import time
import uuid
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, Mapping

import boto3

from offline.cloudformation import RESPONSE_PREFIX, CustomResourceFailed, LocalCertificate, Responses, create_request
from offline.counting import Counts, count_aws_calls
from offline.event_source import SqsPoller
from offline.faults import Faults
from offline.gateway import FUNCTION_URL_PREFIX, FUNCTION_URL_ROUTE, Target, json_reply, make_server
from offline.http_faults import RECEIPT_FUNCTION, HttpFaults
from offline.invoker import FunctionPool, InvocationError, InvocationTimeout, watch_sources
from offline.schedule import Schedule, rate_seconds
from offline.services import LOCAL_AWS_ENV
from offline.template import CustomResource, FunctionSpec, LocalQueue, Template
from offline.throttling import RouteThrottles, too_many_requests

COLORS = ["36", "32", "33", "35", "34", "96", "92", "93", "95", "94"]

# What a function gets besides its template's variables: where the local services are, and what any process
# needs. Nothing else of the runner's environment reaches it, so a missing setting fails here as in AWS.
PLUMBING = ("MONGO_URI", "SQS_ENDPOINT_URL", "SES_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
            "AWS_DEFAULT_REGION", "AWS_REGION", "CRM_CONFIG_FILE")
HOST_VARIABLES = ("PATH", "HOME", "LANG", "TMPDIR")
LOCALE_VARIABLE = re.compile(r"^LC_[A-Z]+$")
# A custom resource's response arrives before its function returns; past this after the return, none will.
RESPONSE_GRACE_SECONDS = 2.0


class LogStream:
    """One stream for all functions, each line behind its function's name, as serverless-offline prints."""

    def __init__(self, names: list[str], out=None):
        self.out = out or sys.stdout
        self.width = max(len(n) for n in names + ["gateway"])
        self.color = self.out.isatty() if hasattr(self.out, "isatty") else False
        self.palette = {name: COLORS[i % len(COLORS)] for i, name in enumerate(names)}
        self.lock = threading.Lock()

    def __call__(self, name: str, line: str) -> None:
        label = name.rjust(self.width)
        if self.color:
            label = f"\033[{self.palette.get(name, '90')}m{label}\033[0m"
        with self.lock:
            try:
                self.out.write(f"{label} | {line}\n")
                self.out.flush()
            except ValueError:
                pass  # the stream was closed under a worker still finishing after stop(): its last lines are lost


def function_environment(spec: FunctionSpec, env: Mapping[str, str], pythonpath: str,
                         host_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A function's environment: its template's variables (a value in env overrides a declared one, and only a
    declared one), the local plumbing, and Lambda's own names."""
    host_env = os.environ if host_env is None else host_env
    result: dict[str, str] = {}
    for key, value in {**host_env, **env}.items():
        if key in HOST_VARIABLES or LOCALE_VARIABLE.match(key):
            result[key] = value
    result.update({key: env.get(key, default) for key, default in LOCAL_AWS_ENV.items()})
    result.update({key: env[key] for key in PLUMBING if key in env})
    result.update({key: env.get(key, value) for key, value in spec.environment.items()})
    # AWS_EXECUTION_ENV as Lambda sets it: libraries that behave differently in a function read it (pymongo then
    # polls the server's state instead of holding a streaming check open on it from every container).
    result.update({"PYTHONPATH": pythonpath, "AWS_LAMBDA_FUNCTION_NAME": spec.name,
                   "AWS_EXECUTION_ENV": LAMBDA_EXECUTION_ENV, "POWERTOOLS_SERVICE_NAME": spec.name})
    return result


# What Lambda's python3.11 runtime (the template's Runtime) names itself in AWS_EXECUTION_ENV.
LAMBDA_EXECUTION_ENV = "AWS_Lambda_python3.11"


class OfflineRunner:
    """template's functions served locally.

    retry_delay_seconds: None (faithful) leaves a failed batch to its queue's VisibilityTimeout; a number makes
    it visible again after that many seconds instead. time_scale > 1 runs local time faster: schedules, and the
    DelaySeconds the functions send, are divided by it (a delay stays at least a second; queues are scaled where
    they are made: services.create_queues). faults: what fault mode injects (offline.faults.Faults), none by
    default. count: tally what the functions and the runner do that AWS and Atlas bill (offline.counting), for
    counts(); off by default.
    """

    def __init__(self, template: Template, queues: dict[str, LocalQueue], env: dict[str, str], *,
                 host: str = "127.0.0.1", port: int = 4000, retry_delay_seconds: int | None = None,
                 max_consumers: int = 2, max_workers: int = 4, reload: bool = True, out=None,
                 time_scale: float = 1.0, faults: Faults | None = None, count: bool = False):
        if not (isinstance(time_scale, (int, float)) and math.isfinite(time_scale) and time_scale > 0):
            raise ValueError(f"time_scale must be a number above 0, not {time_scale!r}")
        self.template = template
        self.queues = queues
        self.time_scale = float(time_scale)
        self.faults = faults or Faults()
        self.counting = Counts({name: spec.memory for name, spec in template.functions.items()}) if count else None
        self.stop_event = threading.Event()
        self.log = LogStream(list(template.functions) + ["schedule", "faults"], out)
        self.responses = Responses()
        self.route_throttles = RouteThrottles(template.default_throttle, template.route_throttles)
        self.public_host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host  # noqa: S104 - a comparison
        self.certificate = (LocalCertificate([self.public_host, "127.0.0.1", "localhost"])
                            if template.custom_resources else None)
        resource_functions = {resource.function for resource in template.custom_resources}
        # The layers, as Lambda mounts them; and this package, for the worker's own module.
        pythonpath = os.pathsep.join([*map(str, template.layers), str(Path(__file__).resolve().parent.parent)])
        self.pools = {
            name: FunctionPool(spec, function_environment(spec, env, pythonpath), self.log, max_workers,
                               self._worker_args(name in resource_functions),
                               self.counting.invocation if self.counting else None)
            for name, spec in template.functions.items()
        }
        receipt_pool = self.pools.get(RECEIPT_FUNCTION)
        self.http_faults = HttpFaults(self.faults, self.invoke, self.log, self.time_scale,
                                      receipt_pool.env if receipt_pool else {}, template.layers)
        self.server: ThreadingHTTPServer = make_server(
            host, port, self.dispatch, self.handle, self.log, self.internal,
            self.certificate.server_context() if self.certificate else None)
        self.port = self.server.server_address[1]
        self.server_thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._serving = False
        self.threads: list[threading.Thread] = []
        self._started: list[threading.Thread] = []
        sqs = boto3.client("sqs", endpoint_url=env.get("SQS_ENDPOINT_URL"), region_name="us-east-1")
        if self.counting:
            count_aws_calls(sqs.meta.events, self.counting.add)  # the event source mappings' polls are billed too
        for name, spec in template.functions.items():
            for source in spec.sqs_sources:
                for _ in range(min(source.max_concurrency or max_consumers, max_consumers)):
                    self.threads.append(SqsPoller(sqs, name, queues[source.queue], source, self.invoke, self.log,
                                                  self.stop_event, retry_delay_seconds, self.faults, self.time_scale))
        self.skipped_schedules: list[str] = []
        for name, spec in template.functions.items():
            for source in spec.schedules:
                period = rate_seconds(source.expression)
                if not source.enabled:
                    self.skipped_schedules.append(f"{name} {source.name}: disabled in the template")
                elif period is None:
                    self.skipped_schedules.append(f"{name} {source.name}: {source.expression} is not run locally "
                                                  f"(only rate(...) is)")
                else:
                    self.threads.append(Schedule(name, source, period / self.time_scale, self.invoke, self.log,
                                                 self.stop_event))
        if reload:
            watched = [*map(str, template.layers), *{str(spec.code_uri) for spec in template.functions.values()}]
            self.threads.append(threading.Thread(target=watch_sources, args=(watched, self.reload, self.stop_event),
                                                 daemon=True))

    def _worker_args(self, serves_custom_resource: bool) -> tuple[str, ...]:
        args: tuple[str, ...] = ("--time-scale", repr(self.time_scale)) if self.time_scale != 1 else ()
        if serves_custom_resource and self.certificate:
            args += ("--trust-ca", str(self.certificate.cafile))
        if self.counting:
            args += ("--count",)
        return args

    def dispatch(self, method: str, path: str) -> Target | None:
        if path.startswith(FUNCTION_URL_PREFIX):
            name, _, rest = path[len(FUNCTION_URL_PREFIX):].partition("/")
            spec = self.template.functions.get(name)
            return Target(name, FUNCTION_URL_ROUTE, {}, f"/{rest}") if spec and spec.function_url else None
        routed = self.template.route(method, path)
        return Target(routed[0], routed[1], routed[2], path) if routed else None

    def invoke(self, function: str, event: Any, **options: Any) -> Any:
        return self.pools[function].invoke(event, **options)

    def handle(self, target: Target, event: dict[str, Any]) -> dict[str, Any]:
        # API Gateway refuses a route's call beyond its throttle before any function runs; a Function URL has none.
        if target.route is not FUNCTION_URL_ROUTE and not self.route_throttles.allows(target.route.key):
            return too_many_requests()
        if self.counting:
            self.counting.add("http.function_url" if target.route is FUNCTION_URL_ROUTE else "http.api",
                              function=target.function)
        return self.http_faults.handle(target, event)

    def counts(self) -> dict[str, Any]:
        """What was counted since start (offline.counting): take one before and one after, and their difference."""
        if self.counting is None:
            raise RuntimeError("this runner does not count: start it with count=True")
        return self.counting.snapshot()

    def in_flight(self, scheduled: bool = True) -> int:
        """Invocations under way now, of every function; scheduled=False leaves out the functions only a schedule
        invokes (they run on their own clock: the roll-up keeps going for its whole minute)."""
        return sum(pool.busy for name, pool in self.pools.items()
                   if scheduled or not self._only_scheduled(self.template.functions[name]))

    @staticmethod
    def _only_scheduled(spec: FunctionSpec) -> bool:
        return bool(spec.schedules) and not (spec.routes or spec.sqs_sources or spec.function_url)

    def internal(self, method: str, path: str, body: bytes) -> dict[str, Any] | None:
        """The runner's own routes: fault counts, and custom resources' responses."""
        if path == "/_offline/faults" and method in ("GET", "HEAD"):
            return json_reply(200, {"injected": self.faults.injected()})
        if path.startswith(RESPONSE_PREFIX) and method == "PUT":
            if self.responses.record(path[len(RESPONSE_PREFIX):], body):
                return {"statusCode": 200, "headers": {}, "body": ""}
        return None

    def reload(self) -> None:
        self.log("offline", "source changed: new invocations get fresh workers")
        for pool in self.pools.values():
            pool.reload()

    def start(self) -> OfflineRunner:
        """Serves, creates the custom resources (CustomResourceFailed when one fails: stopped again), then polls
        and ticks."""
        if self.faults.active:
            self.log("offline", f"fault mode: {self.faults.describe()}")
        if self.time_scale != 1:
            self.log("offline", f"time runs {self.time_scale:g}x: visibility timeouts, delays and schedules are "
                                f"divided by {self.time_scale:g}")
        self.server_thread.start()
        self._serving = True
        try:
            for resource in self.template.custom_resources:
                self._create(resource)
        except BaseException:
            self.stop()
            raise
        for thread in self.threads:
            thread.start()
            self._started.append(thread)
        for name, spec in self.template.functions.items():
            for route in spec.routes:
                url = f"http://{self.server.server_address[0]}:{self.port}{route.path}"
                self.log("offline", f"{route.method:>4} {url} -> {name}")
            for source in spec.sqs_sources:
                self.log("offline", f" SQS {self.queues[source.queue].name} (batch {source.batch_size}) -> {name}")
            if spec.function_url:
                url = f"http://{self.server.server_address[0]}:{self.port}{FUNCTION_URL_PREFIX}{name}/"
                self.log("offline", f" URL {url} -> {name} (its Function URL)")
        self.log("offline", self._throttling())
        for thread in self.threads:
            if isinstance(thread, Schedule):
                self.log("offline", f"EVERY {thread.period:g} s ({thread.source.expression}) -> {thread.function}")
        for skipped in self.skipped_schedules:
            self.log("offline", f"schedule skipped: {skipped}")
        return self

    def _throttling(self) -> str:
        """One line of what answers 429 here, as in AWS: the routes' throttles and the functions' reservations."""
        def bucket(throttle) -> str:
            return "unthrottled" if None in (throttle.rate, throttle.burst) else \
                f"{throttle.rate:g}/s (burst {throttle.burst})"

        routes = "; ".join(f"{key} {bucket(throttle)}" for key, throttle in self.template.route_throttles.items())
        reserved = ", ".join(f"{name} {spec.reserved_concurrency}" for name, spec in self.template.functions.items()
                             if spec.reserved_concurrency is not None)
        return (f"throttling: each route {bucket(self.template.default_throttle)}{'; ' + routes if routes else ''}; "
                f"reserved concurrency: {reserved or 'none'}")

    def _create(self, resource: CustomResource) -> None:
        """Sends the resource's function CloudFormation's Create request and waits for its response."""
        spec = self.template.functions[resource.function]
        request_id = str(uuid.uuid4())
        self.responses.expect(request_id)
        url = f"https://{self.public_host}:{self.port}{RESPONSE_PREFIX}{request_id}"
        request = create_request(resource, url, request_id)
        what = f"custom resource {resource.name} ({resource.type}) -> {resource.function}"
        self.log("offline", f"{what}: Create")
        error: Exception | None = None
        started = time.monotonic()
        try:
            self.invoke(resource.function, request)
        except (InvocationError, InvocationTimeout) as exc:
            error = exc
        response = self.responses.wait(request_id, RESPONSE_GRACE_SECONDS)
        if response is None:
            if isinstance(error, InvocationTimeout):
                reason = f"no response within its timeout ({spec.timeout} s)"
            elif error is not None:
                reason = f"it failed without a response: {error}"
            else:
                reason = "it returned without sending a response to the ResponseURL"
            raise CustomResourceFailed(f"{what}: {reason}")
        status = response.get("Status")
        if status != "SUCCESS":
            reason = response.get("Reason") or "no reason given"
            raise CustomResourceFailed(f"{what}: {status or 'no Status'}: {reason}")
        wrong = [key for key in ("RequestId", "StackId", "LogicalResourceId") if response.get(key) != request[key]]
        if wrong or not response.get("PhysicalResourceId"):
            raise CustomResourceFailed(f"{what}: CloudFormation would refuse this response: "
                                       f"{'wrong ' + ', '.join(wrong) if wrong else 'no PhysicalResourceId'}")
        self.log("offline", f"{what}: SUCCESS ({response['PhysicalResourceId']}) in "
                            f"{time.monotonic() - started:.1f} s")

    def stop(self) -> None:
        if self.stop_event.is_set():
            return
        self.stop_event.set()
        if self._serving:
            self.server.shutdown()
            self._serving = False
        self.server.server_close()
        self.http_faults.close()
        for thread in self._started:
            thread.join(timeout=5)
        for pool in self.pools.values():
            pool.close()
        if self.certificate:
            self.certificate.close()
        if self.faults.active:
            self.log("offline", self.faults.summary())


__all__ = ["CustomResourceFailed", "OfflineRunner", "function_environment"]
