"""Pools of worker processes per function: the function's timeout, its own log prefix, and hot reload."""
from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
import uuid
from typing import Any, Callable, TextIO

from offline.template import FunctionSpec

Log = Callable[[str, str], None]
# Told of each invocation, when the runner counts (offline.counting.Counts.invocation): the function, its duration
# and its cold start's init (s), and what the worker counted (its reply's "counts", None without a reply).
Meter = Callable[[str, float, float, dict[str, Any] | None], None]


class InvocationError(Exception):
    """The handler raised (or failed to import); carries Lambda's error shape."""

    def __init__(self, function: str, error: dict[str, Any]):
        super().__init__(f"{function}: {error.get('errorType')}: {error.get('errorMessage')}")
        self.function = function
        self.error = error


class InvocationTimeout(Exception):
    pass


class Throttled(InvocationError):
    """Lambda refused the invocation: as many run already as the function's reserved concurrency allows."""

    def __init__(self, function: str, reserved: int):
        super().__init__(function, {"errorType": "TooManyRequestsException",
                                    "errorMessage": f"Rate Exceeded. (reserved concurrency {reserved}, all in use)"})


class WorkerKilled(InvocationError):
    """The runner killed the worker mid-invocation (fault mode), as a crash of the Lambda runtime would end it."""

    def __init__(self, function: str, after_seconds: float):
        super().__init__(function, {"errorType": "Runtime.ExitError",
                                    "errorMessage": f"worker killed {after_seconds:.2f} s into the invocation"})


class Worker:
    def __init__(self, spec: FunctionSpec, env: dict[str, str], generation: int, log: Log,
                 args: tuple[str, ...] = (), meter: Meter | None = None):
        self.spec = spec
        self.generation = generation
        self.meter = meter
        self.created = time.perf_counter()  # a cold start's init runs from here to the worker's ready line
        self.process = subprocess.Popen(
            [sys.executable, "-u", "-m", "offline.lambda_worker", spec.name, str(spec.code_uri), spec.handler,
             str(spec.memory), *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1, env=env,
        )
        self.replies: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(self.process.stdout, self.replies.put, True), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.process.stderr, lambda line: log(spec.name, line), False),
                         daemon=True).start()
        self._ready = False

    @staticmethod
    def _pump(stream: TextIO, sink: Callable[[Any], None], signal_end: bool) -> None:
        for line in stream:
            sink(line.rstrip("\n"))
        if signal_end:
            sink(None)

    def _next_reply(self, timeout: float) -> dict[str, Any]:
        line = self.replies.get(timeout=timeout)
        if line is None:
            raise InvocationError(self.spec.name, {"errorType": "Runtime.ExitError",
                                                   "errorMessage": f"worker exited with {self.process.wait()}"})
        return json.loads(line)

    def invoke(self, event: dict[str, Any]) -> Any:
        deadline = time.time() + self.spec.timeout
        started, init_seconds, reply = time.perf_counter(), 0.0, None
        try:
            if not self._ready:
                self._next_reply(self.spec.timeout)  # the init phase counts toward the timeout here
                self._ready = True
                started = time.perf_counter()
                init_seconds = started - self.created
            request = {"request_id": str(uuid.uuid4()), "deadline": deadline, "event": event}
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            reply = self._next_reply(max(0.0, deadline - time.time()))
        except queue.Empty:
            self.kill()
            raise InvocationTimeout(f"{self.spec.name} timed out after {self.spec.timeout} s") from None
        except (BrokenPipeError, OSError) as exc:
            self.kill()
            raise InvocationError(self.spec.name, {"errorType": "Runtime.ExitError", "errorMessage": str(exc)}) from exc
        finally:
            if self.meter is not None:
                self.meter(self.spec.name, time.perf_counter() - started, init_seconds,
                           reply.get("counts") if reply else None)
        if not reply.get("ok"):
            raise InvocationError(self.spec.name, reply["error"])
        return reply["result"]

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.alive:
            self.process.kill()
        self.process.wait()


class FunctionPool:
    """Up to max_workers warm workers; each handles one event at a time, as a Lambda container does."""

    def __init__(self, spec: FunctionSpec, env: dict[str, str], log: Log, max_workers: int = 4,
                 worker_args: tuple[str, ...] = (), meter: Meter | None = None):
        self.spec = spec
        self.env = env
        self.log = log
        self.max_workers = max_workers
        self.worker_args = worker_args
        self.meter = meter
        self.generation = 0
        self._idle: list[Worker] = []
        self._busy = 0
        self._executions = 0
        self._closed = False
        self._lock = threading.Condition()

    def invoke(self, event: dict[str, Any], kill_after: float | None = None, kill_on_return: bool = False) -> Any:
        """kill_after: SIGKILL the worker that many seconds into the invocation, unless it has returned by then
        (then WorkerKilled is raised); kill_on_return: kill it once the handler has returned (its result is
        still returned). Both are for fault mode; the worker is never reused after either. Throttled when the
        function's reserved concurrency is all in use."""
        self._start_execution()
        try:
            worker = self._acquire()
            try:
                if kill_after is None:
                    result = worker.invoke(event)
                else:
                    result = self._invoke_and_kill(worker, event, kill_after)
                if kill_on_return:
                    worker.kill()
                return result
            finally:
                self._release(worker)
        finally:
            with self._lock:
                self._executions -= 1

    def _start_execution(self) -> None:
        """Lambda refuses an invocation beyond the reserved concurrency rather than queue it. One waiting here for
        a local worker counts: in Lambda it would be running."""
        reserved = self.spec.reserved_concurrency
        with self._lock:
            if reserved is not None and self._executions >= reserved:
                raise Throttled(self.spec.name, reserved)
            self._executions += 1

    def _invoke_and_kill(self, worker: Worker, event: dict[str, Any], after: float) -> Any:
        lock = threading.Lock()
        state = {"returned": False, "killed": False}

        def kill() -> None:
            # Under the lock, so the worker is dead before the invoking thread can hand it back to the pool.
            with lock:
                if not state["returned"]:
                    state["killed"] = True
                    worker.kill()

        timer = threading.Timer(after, kill)
        timer.daemon = True
        timer.start()
        result: Any = None
        failure: InvocationError | InvocationTimeout | None = None
        try:
            result = worker.invoke(event)
        except (InvocationError, InvocationTimeout) as exc:
            failure = exc
        with lock:
            state["returned"] = True
        timer.cancel()
        if state["killed"]:  # whatever the worker managed to answer, the runtime died under it
            raise WorkerKilled(self.spec.name, after) from failure
        if failure is not None:
            raise failure
        return result

    def _acquire(self) -> Worker:
        with self._lock:
            while not self._idle and self._busy >= self.max_workers:
                self._lock.wait()
            self._busy += 1
            if self._idle:
                return self._idle.pop()
            generation = self.generation
        try:
            return Worker(self.spec, self.env, generation, self.log, self.worker_args, self.meter)
        except BaseException:
            with self._lock:
                self._busy -= 1
                self._lock.notify()
            raise

    def _release(self, worker: Worker) -> None:
        with self._lock:
            self._busy -= 1
            if worker.alive and worker.generation == self.generation and not self._closed:
                self._idle.append(worker)
            else:
                worker.kill()
            self._lock.notify()

    @property
    def busy(self) -> int:
        """Invocations in flight (or waiting for a worker)."""
        with self._lock:
            return self._busy

    def reload(self) -> None:
        """New events get fresh workers; busy ones finish what they are doing first."""
        with self._lock:
            self.generation += 1
            stale, self._idle = self._idle, []
        for worker in stale:
            worker.kill()

    def close(self) -> None:
        """Idle workers stop now, busy ones when they finish (a late invocation gets a worker that does not stay)."""
        with self._lock:
            self._closed = True
        self.reload()


def watch_sources(paths: list[str], on_change: Callable[[], None], stop: threading.Event,
                  interval: float = 1.0) -> None:
    """Polls .py modification times; cheap enough for a project this size and needs no extra package."""
    def snapshot() -> dict[str, float]:
        seen = {}
        for root in paths:
            for folder, _, files in os.walk(root):
                for name in files:
                    if name.endswith(".py"):
                        path = os.path.join(folder, name)
                        try:
                            seen[path] = os.stat(path).st_mtime
                        except FileNotFoundError:
                            pass
        return seen

    before = snapshot()
    while not stop.wait(interval):
        now = snapshot()
        if now != before:
            before = now
            _drop_bytecode(paths)
            on_change()


def _drop_bytecode(paths: list[str]) -> None:
    """Bytecode records its source's mtime in whole seconds: an edit within the same second would be missed."""
    for root in paths:
        for folder, dirs, _ in os.walk(root):
            if "__pycache__" in dirs:
                shutil.rmtree(os.path.join(folder, "__pycache__"), ignore_errors=True)
