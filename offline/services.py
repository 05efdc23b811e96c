"""The local stand-ins for AWS and Atlas: SecantusDB and moto server as child processes, and the queues."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from email.utils import parseaddr
from pathlib import Path
from typing import Callable, Mapping

from offline.template import STACK_NAME, LocalQueue, QueueSpec, Template

# As `sam local --parameter-overrides` would: a development stack, secrets from config, not Secrets Manager.
LOCAL_PARAMETERS = {"Stage": "development", "MongoUriSecretName": "", "JwtSecretName": "", "GoogleClientSecretName": "",
                    "VendorApiKeySecretName": "", "WebhookSecretName": "", "UnsubscribeSecretName": ""}
# With CHANNEL=ses and no SES_FROM_ADDRESS (environment or config file): who local e-mail is from.
LOCAL_SENDER = "Mini CRM <crm@example.com>"
LOCAL_AWS_ENV = {"AWS_ACCESS_KEY_ID": "offline", "AWS_SECRET_ACCESS_KEY": "offline", "AWS_DEFAULT_REGION": "us-east-1",
                 "AWS_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ChildProcess:
    def __init__(self, name: str, args: list[str], ready: Callable[[], bool], log_path: Path | None,
                 timeout: float = 30.0, cwd: Path | None = None):
        self.name = name
        self.log_file = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - kept open while running
        self.process = subprocess.Popen(args, stdout=self.log_file, stderr=subprocess.STDOUT,
                                        start_new_session=True, cwd=cwd)
        deadline = time.monotonic() + timeout
        while not ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{name} did not start" + (f"; see {log_path}" if log_path else ""))
            time.sleep(0.1)

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.log_file is not subprocess.DEVNULL:
            self.log_file.close()


def _tcp_open(port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False
    return check


def _http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return True
        except OSError:
            return False
    return check


class MongoServer(ChildProcess):
    """SecantusDB: a real MongoDB wire-protocol server; storage ':memory:' for a throwaway one."""

    def __init__(self, storage: str, port: int | None = None, log_path: Path | None = None):
        self.port = port or free_port()
        self.uri = f"mongodb://127.0.0.1:{self.port}/"
        if storage != ":memory:":
            Path(storage).mkdir(parents=True, exist_ok=True)
        executable = shutil.which("secantusd-py", path=os.path.dirname(sys.executable)) or "secantusd-py"
        super().__init__("SecantusDB", [executable, "--host", "127.0.0.1", "--port", str(self.port),
                                        "--storage-path", storage, "--log-level", "WARNING"],
                         _tcp_open(self.port), log_path)


class SqsServer(ChildProcess):
    """moto server, for SQS (and, with CHANNEL=ses, SES)."""

    def __init__(self, port: int | None = None, log_path: Path | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__("moto", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                         _http_ok(f"{self.url}/moto-api/"), log_path)


def config_value(env: Mapping[str, str], key: str) -> str | None:
    """A setting as a function reads it when nothing declares it: the environment, else the config file."""
    if env.get(key):
        return env[key]
    path = env.get("CRM_CONFIG_FILE")
    try:
        value = json.loads(Path(path).read_text()).get(key) if path else None
    except (OSError, ValueError, AttributeError):
        return None
    return str(value) if value not in (None, "") else None


def prepare_local_ses(env: dict[str, str], configuration_set: str = f"{STACK_NAME}-email") -> str | None:
    """With CHANNEL=ses in env: SES is moto's (SES_ENDPOINT_URL, by default the SQS endpoint: one moto server),
    the sender is verified there and the configuration set exists, as in an account set up for the stack. Fills
    in env's SES_* settings and returns the sender; None (env untouched) for any other channel."""
    if (env.get("CHANNEL") or "").strip().lower() != "ses":
        return None
    import boto3
    from botocore.exceptions import ClientError

    env["SES_ENDPOINT_URL"] = env.get("SES_ENDPOINT_URL") or env["SQS_ENDPOINT_URL"]
    env["SES_FROM_ADDRESS"] = config_value(env, "SES_FROM_ADDRESS") or LOCAL_SENDER
    env["SES_CONFIGURATION_SET"] = config_value(env, "SES_CONFIGURATION_SET") or configuration_set
    ses = boto3.client("sesv2", endpoint_url=env["SES_ENDPOINT_URL"], region_name=env.get("AWS_REGION", "us-east-1"),
                       aws_access_key_id=env.get("AWS_ACCESS_KEY_ID", LOCAL_AWS_ENV["AWS_ACCESS_KEY_ID"]),
                       aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY", LOCAL_AWS_ENV["AWS_SECRET_ACCESS_KEY"]))
    # moto refuses to send from an address that is neither verified itself nor of a verified domain.
    for create, name in ((ses.create_email_identity, {"EmailIdentity": parseaddr(env["SES_FROM_ADDRESS"])[1]}),
                         (ses.create_configuration_set, {"ConfigurationSetName": env["SES_CONFIGURATION_SET"]})):
        try:
            create(**name)
        except ClientError as exc:  # there already: SES says AlreadyExistsException, moto names the kind
            if "AlreadyExists" not in exc.response.get("Error", {}).get("Code", ""):
                raise
    return env["SES_FROM_ADDRESS"]


def queue_env(stack: Template) -> dict[str, str]:
    """The SQS_* variables the template gives its functions, for code that runs outside a worker."""
    return {key: value for spec in stack.functions.values() for key, value in spec.environment.items()
            if key.startswith("SQS_") and key.endswith("_QUEUE_URL")}


# SQS's limits on the attributes the time scale shortens (or, below 1, lengthens).
MAX_VISIBILITY_TIMEOUT = 43_200
MAX_DELAY_SECONDS = 900


def scaled_seconds(seconds: float, time_scale: float, minimum: int = 0, maximum: int | None = None) -> int:
    """seconds / time_scale as the whole seconds SQS takes; a non-zero value stays at least `minimum`."""
    if seconds <= 0:
        return 0
    value = max(minimum, round(seconds / time_scale))
    return min(value, maximum) if maximum is not None else value


def create_queues(sqs, queues: dict[str, QueueSpec], prefix: str = "",
                  time_scale: float = 1.0) -> dict[str, LocalQueue]:
    """Every queue of the template, dead-letter queues first, with its attributes and redrive policy.

    time_scale > 1 runs local time faster: VisibilityTimeout and DelaySeconds are divided by it (a non-zero one stays
    at least a second), nothing else.
    """
    ordered = sorted(queues.values(), key=lambda q: q.dead_letter_queue is not None)
    created: dict[str, LocalQueue] = {}
    for spec in ordered:
        name = f"{prefix}{spec.name}"
        attributes = {key: str(spec.properties[key]) for key in ("VisibilityTimeout", "MessageRetentionPeriod",
                                                                 "DelaySeconds", "ReceiveMessageWaitTimeSeconds")
                      if key in spec.properties}
        if "VisibilityTimeout" in attributes:
            attributes["VisibilityTimeout"] = str(scaled_seconds(float(attributes["VisibilityTimeout"]), time_scale,
                                                                 1, MAX_VISIBILITY_TIMEOUT))
        if "DelaySeconds" in attributes:
            attributes["DelaySeconds"] = str(scaled_seconds(float(attributes["DelaySeconds"]), time_scale,
                                                            1, MAX_DELAY_SECONDS))
        if spec.dead_letter_queue:
            policy = spec.properties["RedrivePolicy"]
            attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": created[spec.dead_letter_queue].arn,
                                                      "maxReceiveCount": int(policy.get("maxReceiveCount", 5))})
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        created[spec.name] = LocalQueue(name, url, queue_arn(sqs, url))
    return created


def queue_arn(sqs, url: str) -> str:
    """A queue's ARN from its URL (<endpoint>/<account>/<name>, in AWS as in moto): what GetQueueAttributes answers,
    without the call (each test makes the template's queues)."""
    account, name = url.rstrip("/").split("/")[-2:]
    return f"arn:aws:sqs:{sqs.meta.region_name}:{account}:{name}"
