"""Fault mode over HTTP: API replies lost after their writes, a mock vendor that fails or hangs, and delivery
reports that the vendor loses, repeats or sends late. The functions themselves run unchanged."""
from __future__ import annotations

import base64
import json
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from offline.faults import RECEIPT_FAULTS, Faults
from offline.gateway import (
    FUNCTION_URL_ROUTE,
    Invoke,
    Target,
    error_reply,
    failure_reply,
    function_reply,
    json_reply,
    result_reply,
)
from offline.invoker import InvocationError, InvocationTimeout

# The mock vendor's send route, and the function whose Function URL the vendor reports to.
VENDOR_ROUTE = "/api/mock-send"
RECEIPT_FUNCTION = "ReceiptsFunction"
# A send client gives up well before this (the vendor client's timeout is 5 s).
VENDOR_HOLD_SECONDS = 6.0
# How much later a late receipt comes (divided by the time scale), as a vendor's retry would.
LATE_RECEIPT_SECONDS = (30.0, 120.0)


class HttpFaults:
    """Sits between the gateway and the functions; without faults it only invokes."""

    def __init__(self, faults: Faults, invoke: Invoke, log: Callable[[str, str], None], time_scale: float,
                 receipt_env: dict[str, str], layers: list[Path]):
        self.faults = faults
        self.invoke = invoke
        self.log = log
        self.time_scale = time_scale
        self.receipt_env = receipt_env
        self.layers = layers
        self._timers: list[threading.Timer] = []
        self._lock = threading.Lock()
        self._closed = False

    def handle(self, target: Target, event: dict[str, Any]) -> dict[str, Any]:
        if target.route is FUNCTION_URL_ROUTE:
            if target.function == RECEIPT_FUNCTION and any(self.faults.enabled(n) for n in RECEIPT_FAULTS):
                return self._receipts(target, event)
        elif target.route.path == VENDOR_ROUTE:
            if self.faults.should("vendor_error"):
                return self._vendor_error(target, event)
        elif self.faults.should("api_kill"):
            return self._api_kill(target, event)
        return function_reply(self.invoke, target.function, event)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()

    def _api_kill(self, target: Target, event: dict[str, Any]) -> dict[str, Any]:
        """The handler runs to its end (its writes are made), then its worker dies before the reply leaves."""
        try:
            result = self.invoke(target.function, event, kill_on_return=True)
        except (InvocationError, InvocationTimeout) as exc:
            return failure_reply(exc, event)  # it failed by itself: nothing to inject
        self.faults.count("api_kill")
        status = result_reply(result).get("statusCode")
        self.log("faults", f"api_kill: {target.function} killed after it answered {status} to "
                           f"{event['requestContext']['http']['method']} {event['rawPath']}; the client gets 502")
        return error_reply(502, "function_error", f"{target.function}: Runtime.ExitError: the function's process "
                                                  f"exited before it replied")

    def _vendor_error(self, target: Target, event: dict[str, Any]) -> dict[str, Any]:
        mode = self.faults.choice(("refuse", "fail_after_accepting", "hang_after_accepting"))
        self.faults.count("vendor_error")
        if mode == "refuse":
            self.log("faults", "vendor_error: the vendor answers 503 without taking the send")
            return error_reply(503, "vendor_unavailable", "The vendor is unavailable; try again later")
        reply = function_reply(self.invoke, target.function, event)
        if mode == "fail_after_accepting":
            self.log("faults", f"vendor_error: the vendor took the send ({reply.get('statusCode')}) and answers 500")
            return error_reply(500, "vendor_error", "The vendor failed")
        self.log("faults", f"vendor_error: the vendor took the send ({reply.get('statusCode')}) and holds the "
                           f"reply {VENDOR_HOLD_SECONDS:g} s, then 504")
        time.sleep(VENDOR_HOLD_SECONDS)
        return error_reply(504, "vendor_timeout", "The vendor did not answer in time")

    def _receipts(self, target: Target, event: dict[str, Any]) -> dict[str, Any]:
        """Per receipt: lost, sent twice, sent late (re-signed, as a vendor retry would be), or delivered."""
        signing, secret = self._signing()
        body = _body(event)
        headers = event.get("headers") or {}
        try:
            signing.verify(secret, headers.get("x-vendor-timestamp"), headers.get("x-vendor-signature"), body)
            payload = json.loads(body)
        except Exception:  # noqa: BLE001 - not a valid report from the vendor: the function answers it as usual
            return function_reply(self.invoke, target.function, event)
        receipts = payload.get("receipts") if isinstance(payload, dict) and "receipts" in payload else [payload]
        if not isinstance(receipts, list) or not receipts:
            return function_reply(self.invoke, target.function, event)
        now, again, late, dropped = [], [], [], 0
        for receipt in receipts:
            if self.faults.should("receipt_drop"):
                dropped += 1
            elif self.faults.should("receipt_dup"):
                now.append(receipt)
                again.append(receipt)
            elif self.faults.should("receipt_late"):
                late.append(receipt)
            else:
                now.append(receipt)
        if not (dropped or again or late):
            return function_reply(self.invoke, target.function, event)
        for name, n in (("receipt_drop", dropped), ("receipt_dup", len(again)), ("receipt_late", len(late))):
            if n:
                self.faults.count(name, n)
        if late:
            delay = self.faults.uniform(*LATE_RECEIPT_SECONDS) / self.time_scale
            self._later(delay, lambda: self._deliver(target, event, late, f"receipt_late: {len(late)} receipt(s) "
                                                                          f"{delay:.0f} s late"))
        self.log("faults", f"receipts: of {len(receipts)}, {dropped} dropped, {len(again)} sent twice, "
                           f"{len(late)} held back")
        reply = self._deliver(target, event, now, "") if now else None
        if again:
            self._deliver(target, event, again, f"receipt_dup: {len(again)} receipt(s) again")
        if reply is not None and not 200 <= int(reply.get("statusCode", 500)) < 300:
            return reply  # the vendor sees the failure and retries the whole report
        ignored = _reply_value(reply, "ignored", 0)
        return json_reply(reply.get("statusCode", 202) if reply else 202, {"accepted": len(receipts),
                                                                            "ignored": ignored})

    def _deliver(self, target: Target, event: dict[str, Any], receipts: list[Any], what: str) -> dict[str, Any]:
        signing, secret = self._signing()
        body = json.dumps({"receipts": receipts}, separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        now = datetime.now(timezone.utc)
        headers = {**(event.get("headers") or {}), "content-length": str(len(body)), "x-vendor-timestamp": timestamp,
                   "x-vendor-signature": signing.sign(secret, timestamp, body)}
        context = {**event["requestContext"], "requestId": str(uuid.uuid4()),
                   "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"), "timeEpoch": int(now.timestamp() * 1000)}
        reply = function_reply(self.invoke, target.function, {**event, "headers": headers, "body": body.decode(),
                                                              "isBase64Encoded": False, "requestContext": context})
        if what:
            self.log("faults", f"{what} -> {target.function} {reply.get('statusCode')}")
        return reply

    def _later(self, delay: float, action: Callable[[], Any]) -> None:
        with self._lock:
            if self._closed:
                return
            timer = threading.Timer(delay, action)
            timer.daemon = True
            self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()

    def _signing(self):
        """crm.signing (one definition of the signature) and the secret the receipt function checks with."""
        for layer in map(str, self.layers):
            if layer not in sys.path:
                sys.path.append(layer)
        from crm import signing
        from crm.config import DEV_WEBHOOK_SECRET

        return signing, webhook_secret(self.receipt_env) or DEV_WEBHOOK_SECRET


def webhook_secret(env: dict[str, str]) -> str | None:
    """WEBHOOK_SECRET as the receipt function is given it, else the webhook_secret of its CRM_CONFIG_FILE."""
    if env.get("WEBHOOK_SECRET"):
        return env["WEBHOOK_SECRET"]
    config_file = env.get("CRM_CONFIG_FILE")
    if config_file:
        try:
            config = json.loads(Path(config_file).read_text())
        except (OSError, ValueError):
            return None
        for key, value in config.items() if isinstance(config, dict) else ():
            if key.lower() == "webhook_secret" and value:
                return str(value)
    return None


def _body(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    return base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()


def _reply_value(reply: dict[str, Any] | None, key: str, default: Any) -> Any:
    try:
        return json.loads(reply["body"]).get(key, default) if reply else default
    except (KeyError, TypeError, ValueError, AttributeError):
        return default
