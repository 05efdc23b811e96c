"""HTTP in, API Gateway HTTP API (payload 2.0) events out, and the function's reply back to the client."""
from __future__ import annotations

import base64
import json
import socket
import ssl
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

from offline.invoker import InvocationError, InvocationTimeout, Throttled
from offline.template import HttpRoute
from offline.throttling import FUNCTION_URL_ROUTE_KEY, lambda_throttled

# API Gateway refuses larger payloads before any function runs.
MAX_BODY_BYTES = 10 * 1024 * 1024
# The error codes of requests refused before any route is found.
REFUSALS = {HTTPStatus.REQUEST_URI_TOO_LONG: "uri_too_long",
            HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE: "headers_too_large"}
API_ID = "offline"

# A function's own URL is served locally under /_url/<FunctionName>/, with that prefix removed.
FUNCTION_URL_PREFIX = "/_url/"
FUNCTION_URL_ROUTE = HttpRoute("ANY", FUNCTION_URL_ROUTE_KEY)
# The runner's own routes (fault counts, custom resource responses): never a function's.
INTERNAL_PREFIX = "/_offline/"


@dataclass(frozen=True)
class Target:
    function: str
    route: HttpRoute
    path_parameters: dict[str, str]
    raw_path: str


Dispatch = Callable[[str, str], Target | None]
Invoke = Callable[..., Any]
# A routed request's event to the reply the client gets (the runner puts fault mode in between).
Handle = Callable[[Target, dict[str, Any]], dict[str, Any]]
# The runner's own routes: (method, path, body) to a reply, or None for no such route.
Internal = Callable[[str, str, bytes], dict[str, Any] | None]


def http_api_event(method: str, target: str, headers: list[tuple[str, str]], body: bytes, source_ip: str,
                   route: HttpRoute, path_parameters: dict[str, str], raw_path: str | None = None) -> dict[str, Any]:
    split = urlsplit(target)
    path = raw_path or split.path
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        name = name.lower()
        if name == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
        else:
            merged[name] = f"{merged[name]},{value}" if name in merged else value
    query: dict[str, str] = {}
    for name, value in parse_qsl(split.query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    now = datetime.now(timezone.utc)
    route_key = route.path if route is FUNCTION_URL_ROUTE else route.key
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": split.query,
        "headers": merged,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": API_ID,
            "domainName": merged.get("host", "localhost"),
            "domainPrefix": merged.get("host", "localhost").split(".")[0],
            "http": {"method": method.upper(), "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": source_ip, "userAgent": merged.get("user-agent", "")},
            "requestId": str(uuid.uuid4()),
            "routeKey": route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body:
        try:
            event["body"] = body.decode("utf-8")
        except UnicodeDecodeError:
            event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    return event


def error_reply(status: int, code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"content-type": "application/json"},
            "body": json.dumps({"error": {"code": code, "message": message, "details": details or []}})}


def json_reply(status: int, value: Any) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(value)}


def function_reply(invoke: Invoke, name: str, event: dict[str, Any], **options: Any) -> dict[str, Any]:
    """What API Gateway answers for one invocation: the function's reply, or 504 / 502 when it timed out or failed,
    offline.throttling.lambda_throttled's reply when Lambda throttled it."""
    try:
        result = invoke(name, event, **options)
    except (InvocationTimeout, InvocationError) as exc:
        return failure_reply(exc, event)
    return result_reply(result)


def failure_reply(exc: InvocationTimeout | InvocationError, event: dict[str, Any]) -> dict[str, Any]:
    if isinstance(exc, Throttled):
        return lambda_throttled(event)
    if isinstance(exc, InvocationTimeout):
        return error_reply(504, "function_timeout", str(exc))
    # A development aid: the stack trace of the handler that raised, as the error page.
    trace = "".join(exc.error.get("stackTrace") or [])
    return error_reply(502, "function_error", str(exc), [{"loc": ["stackTrace"], "msg": trace}])


def result_reply(result: Any) -> dict[str, Any]:
    if isinstance(result, dict) and "statusCode" in result:
        return result
    # Payload 2.0: anything else is a 200 with the value as JSON.
    return json_reply(200, result)


class _Server(ThreadingHTTPServer):
    """Plain HTTP, and TLS on the same port when a context is given: a connection that opens with a TLS
    handshake is served over TLS (the custom resource response URL is https, as CloudFormation's is)."""

    daemon_threads = True
    tls: ssl.SSLContext | None = None

    def finish_request(self, request: socket.socket, client_address: Any) -> None:
        if self.tls is None:
            return super().finish_request(request, client_address)
        try:
            first = request.recv(1, socket.MSG_PEEK)
            if first != b"\x16":  # not a TLS ClientHello
                return super().finish_request(request, client_address)
            secure = self.tls.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return None
        try:
            super().finish_request(secure, client_address)
        finally:
            secure.close()


def make_server(host: str, port: int, dispatch: Dispatch, handle: Handle, log: Callable[[str, str], None],
                internal: Internal | None = None, tls: ssl.SSLContext | None = None) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "mini-crm-offline"
        # A reply's headers and body go out in two writes: with Nagle's algorithm the body waits for the client's
        # delayed ACK of the headers, up to 40 ms a request on loopback, which no API Gateway adds.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            """What http.server refuses before routing (a request line too long, too many headers, a malformed
            request) is answered as the gateway's own refusals are: the error envelope, in JSON."""
            self.close_connection = True
            phrase = HTTPStatus(code).phrase
            reply = error_reply(code, REFUSALS.get(code, "bad_request"), message or phrase)
            reply["headers"]["connection"] = "close"
            self._reply(reply)
            log("gateway", f"refused before routing: {code} {phrase}")

        def _serve(self) -> None:
            started = time.perf_counter()
            length = int(self.headers.get("Content-Length") or 0)
            path = urlsplit(self.path).path
            internal_route = path.startswith(INTERNAL_PREFIX)
            match = None if internal_route else dispatch(self.command, path)
            if length > MAX_BODY_BYTES:
                self.close_connection = True
                reply = error_reply(413, "payload_too_large", f"Request bodies are limited to {MAX_BODY_BYTES} bytes")
                name = "gateway"
            elif internal_route:
                body = self.rfile.read(length)
                reply = (internal(self.command, path, body) if internal else None) or \
                    error_reply(404, "not_found", f"No route for {self.command} {path}")
                name = "offline"
            elif match is None:
                self.rfile.read(length)
                reply = error_reply(404, "not_found", f"No route for {self.command} {path}")
                name = "gateway"
            else:
                name = match.function
                body = self.rfile.read(length)
                event = http_api_event(self.command, self.path, list(self.headers.items()), body,
                                       self.client_address[0], match.route, match.path_parameters, match.raw_path)
                reply = handle(match, event)
            try:
                self._reply(reply)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
                name += " (the client had gone)"
            log("gateway", f"{self.command} {self.path} -> {name} {reply.get('statusCode')} "
                           f"{(time.perf_counter() - started) * 1000:.0f} ms")

        def _reply(self, reply: dict[str, Any]) -> None:
            body = reply.get("body") or ""
            payload = base64.b64decode(body) if reply.get("isBase64Encoded") else body.encode()
            self.send_response(int(reply.get("statusCode", 200)))
            headers = {k.lower(): v for k, v in (reply.get("headers") or {}).items()}
            for name, values in (reply.get("multiValueHeaders") or {}).items():
                headers[name.lower()] = ",".join(values)
            headers.pop("content-length", None)
            for name, value in headers.items():
                self.send_header(name, str(value))
            for cookie in reply.get("cookies") or []:
                self.send_header("set-cookie", cookie)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def __getattr__(self, name: str) -> Any:
            # API Gateway passes any method to a route of method ANY; the function decides.
            if name.startswith("do_") and name[3:].isalpha() and name[3:].isupper():
                return self._serve
            raise AttributeError(name)

    server = _Server((host, port), Handler)
    server.tls = tls
    return server
