"""Small stacks for the runner's own tests: a template and its functions written to a temporary folder, run by
the real runner over the session's moto server, each function recording what it was given to a JSON-lines file."""
from __future__ import annotations

import io
import json
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import boto3
import httpx
import pytest

from offline import services, template
from offline.runner import OfflineRunner

# Imported by every fixture function: appends one JSON line to the file named in its template.
RECORDER = '''
import json, os, time

def record(path, **fields):
    with open(path, "a") as f:
        f.write(json.dumps({"pid": os.getpid(), "at": time.time(), **fields}) + "\\n")
'''


def wait_for(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"{what} not met within {timeout:g} s"
        time.sleep(interval)
    return value


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


class SmallStack:
    """A template of our own in a temporary folder; start() runs it and gives an HTTP client on it."""

    def __init__(self, folder: Path, sqs_url: str):
        self.folder = folder
        self.sqs_url = sqs_url
        self.sqs = boto3.client("sqs", endpoint_url=sqs_url, region_name="us-east-1")
        self.log = io.StringIO()
        self.runner: OfflineRunner | None = None
        self.http: httpx.Client | None = None
        self.queues: dict = {}

    def record_file(self, name: str) -> Path:
        return self.folder / f"{name}.jsonl"

    def write(self, template_text: str, functions: dict[str, str]) -> None:
        """functions: folder name -> the source of its app.py (RECORDER's record() is in scope)."""
        for name, source in functions.items():
            (self.folder / name).mkdir(exist_ok=True)
            (self.folder / name / "app.py").write_text(RECORDER + textwrap.dedent(source))
        (self.folder / "template.yaml").write_text(textwrap.dedent(template_text).replace("{dir}", str(self.folder)))

    def start(self, env: dict[str, str] | None = None, time_scale: float = 1.0, **options) -> OfflineRunner:
        path = self.folder / "template.yaml"
        prefix = f"o{uuid.uuid4().hex[:10]}-"
        self.queues = services.create_queues(self.sqs, template.load(path).queues, prefix, time_scale=time_scale)
        stack = template.load(path, local_queues=self.queues)
        self.runner = OfflineRunner(stack, self.queues, {**services.LOCAL_AWS_ENV, "SQS_ENDPOINT_URL": self.sqs_url,
                                                         **(env or {})},
                                    port=0, reload=False, out=self.log, time_scale=time_scale, **options)
        self.runner.start()
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.runner.port}", timeout=30)
        return self.runner

    def send(self, queue: str, body: str, **kwargs) -> None:
        self.sqs.send_message(QueueUrl=self.queues[queue].url, MessageBody=body, **kwargs)

    def injected(self) -> dict[str, int]:
        reply = self.http.get("/_offline/faults")
        assert reply.status_code == 200, reply.text
        return reply.json()["injected"]

    def close(self) -> None:
        if self.http:
            self.http.close()
        if self.runner:
            self.runner.stop()


@pytest.fixture
def small(tmp_path, sqs_server):
    stack = SmallStack(tmp_path, sqs_server.url)
    yield stack
    stack.close()
