"""One worker process: imports one function's handler and serves invocations, like a Lambda container.

Protocol: one JSON request per line on stdin, one JSON reply per line on the original stdout;
everything the function prints goes to stderr, which the runner turns into its log stream.
"""
from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import time
import traceback

ACCOUNT_ID = "123456789012"


class LambdaContext:
    def __init__(self, function_name: str, memory_mb: int, request_id: str, deadline: float):
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:{function_name}"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "offline"
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))


def _error(exc: BaseException) -> dict:
    return {"errorType": type(exc).__name__, "errorMessage": str(exc),
            "stackTrace": traceback.format_exception(type(exc), exc, exc.__traceback__)}


def main() -> None:
    function_name, code_uri, handler_path, memory_mb = sys.argv[1:5]
    # Ctrl-C reaches the whole process group; the runner stops its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.path.insert(0, code_uri)
    module_name, attribute = handler_path.rsplit(".", 1)
    handler, init_error = None, None
    try:
        handler = getattr(importlib.import_module(module_name), attribute)
    except BaseException as exc:  # noqa: BLE001 - reported to the caller as Lambda reports an init error
        init_error = _error(exc)
    replies.write(json.dumps({"ready": True}) + "\n")

    for line in sys.stdin:
        request = json.loads(line)
        if init_error is not None:
            reply = {"ok": False, "error": init_error}
        else:
            context = LambdaContext(function_name, int(memory_mb), request["request_id"], request["deadline"])
            try:
                reply = {"ok": True, "result": handler(request["event"], context)}
            except BaseException as exc:  # noqa: BLE001 - a handler's failure is the invocation's result
                reply = {"ok": False, "error": _error(exc)}
        replies.write(json.dumps(reply, default=str) + "\n")


if __name__ == "__main__":
    main()
