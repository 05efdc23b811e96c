"""The offline runner: every HttpApi route on one port, every SQS event source polled, one log stream."""
from __future__ import annotations

import os
import sys
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3

from offline.event_source import SqsPoller
from offline.gateway import FUNCTION_URL_PREFIX, FUNCTION_URL_ROUTE, Target, make_server
from offline.invoker import FunctionPool, watch_sources
from offline.template import LocalQueue, Template

COLORS = ["36", "32", "33", "35", "34", "96", "92", "93", "95", "94"]


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
            self.out.write(f"{label} | {line}\n")
            self.out.flush()


class OfflineRunner:
    def __init__(self, template: Template, queues: dict[str, LocalQueue], env: dict[str, str], *,
                 host: str = "127.0.0.1", port: int = 4000, retry_delay_seconds: int = 2,
                 max_consumers: int = 2, max_workers: int = 4, reload: bool = True, out=None):
        self.template = template
        self.queues = queues
        self.stop_event = threading.Event()
        self.log = LogStream(list(template.functions), out)
        # The layers, as Lambda mounts them; and this package, for the worker's own module.
        pythonpath = os.pathsep.join([*map(str, template.layers), str(Path(__file__).resolve().parent.parent)])
        self.pools = {
            name: FunctionPool(spec, {**spec.environment, **env, "PYTHONPATH": pythonpath,
                                      "AWS_LAMBDA_FUNCTION_NAME": name, "POWERTOOLS_SERVICE_NAME": name},
                               self.log, max_workers)
            for name, spec in template.functions.items()
        }
        self.server: ThreadingHTTPServer = make_server(host, port, self.dispatch, self.invoke, self.log)
        self.port = self.server.server_address[1]
        self.threads: list[threading.Thread] = [threading.Thread(target=self.server.serve_forever, daemon=True)]
        sqs = boto3.client("sqs", endpoint_url=env.get("SQS_ENDPOINT_URL"), region_name="us-east-1")
        for name, spec in template.functions.items():
            for source in spec.sqs_sources:
                for _ in range(min(source.max_concurrency or max_consumers, max_consumers)):
                    self.threads.append(SqsPoller(sqs, name, queues[source.queue], source, self.invoke, self.log,
                                                  self.stop_event, retry_delay_seconds))
        if reload:
            watched = [*map(str, template.layers), *{str(spec.code_uri) for spec in template.functions.values()}]
            self.threads.append(threading.Thread(target=watch_sources, args=(watched, self.reload, self.stop_event),
                                                 daemon=True))

    def dispatch(self, method: str, path: str) -> Target | None:
        if path.startswith(FUNCTION_URL_PREFIX):
            name, _, rest = path[len(FUNCTION_URL_PREFIX):].partition("/")
            spec = self.template.functions.get(name)
            return Target(name, FUNCTION_URL_ROUTE, {}, f"/{rest}") if spec and spec.function_url else None
        routed = self.template.route(method, path)
        return Target(routed[0], routed[1], routed[2], path) if routed else None

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        return self.pools[function].invoke(event)

    def reload(self) -> None:
        self.log("offline", "source changed: new invocations get fresh workers")
        for pool in self.pools.values():
            pool.reload()

    def start(self) -> OfflineRunner:
        for thread in self.threads:
            thread.start()
        for name, spec in self.template.functions.items():
            for route in spec.routes:
                url = f"http://{self.server.server_address[0]}:{self.port}{route.path}"
                self.log("offline", f"{route.method:>4} {url} -> {name}")
            for source in spec.sqs_sources:
                self.log("offline", f" SQS {self.queues[source.queue].name} (batch {source.batch_size}) -> {name}")
            if spec.function_url:
                url = f"http://{self.server.server_address[0]}:{self.port}{FUNCTION_URL_PREFIX}{name}/"
                self.log("offline", f" URL {url} -> {name} (its Function URL)")
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.server.shutdown()
        self.server.server_close()
        for thread in self.threads[1:]:
            thread.join(timeout=5)
        for pool in self.pools.values():
            pool.close()
