"""The app factory every API function uses: error envelope, request logging, one OpenAPI document."""
from __future__ import annotations

import time
from typing import Any, Sequence
from urllib.parse import unquote

import pymongo
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from crm.api import openapi
from crm.api.deps import known_query_parameters
from crm.config import get_settings
from crm.db import time_budget
from crm.errors import CRMError, translate
from crm.observability import logger

# A batch of 1,000 customers at their longest fits; anything larger is refused before it is parsed.
MAX_BODY_BYTES = 2 * 1024 * 1024
# What a client should wait before retrying a 503.
RETRY_AFTER_SECONDS = 5
# What the logs write for a path segment that holds an address.
REDACTED = "{redacted}"
HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type"}


def error_body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or []}}


def _envelope(status: int, code: str, message: str, details: list[dict[str, Any]] | None = None,
              headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message, details), status_code=status, headers=headers)


def _headers_for(status: int) -> dict[str, str] | None:
    if status == 401:
        return {"WWW-Authenticate": "Bearer"}
    if status == 503:
        return {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return None


async def _crm_error(_: Request, exc: CRMError) -> JSONResponse:
    return _envelope(exc.status_code, exc.code, exc.message, exc.details, _headers_for(exc.status_code))


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    details = [{"loc": list(err.get("loc", ())), "msg": err.get("msg", "invalid")} for err in exc.errors()]
    fields = ", ".join(".".join(map(str, d["loc"])) for d in details[:5])
    return _envelope(422, "validation_error", f"Invalid input: {fields}", details)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = HTTP_CODES.get(exc.status_code, "http_error")
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return _envelope(exc.status_code, code, str(exc.detail), headers=headers or None)


def _allowed_methods(request: Request) -> list[str]:
    """Every method the routes of this path serve (Starlette's own Allow names only the first route's); a
    literal path such as /api/segments/preview is that path, not a value of /api/segments/{segment_id}."""
    matching = [route for route in iter_route_contexts(request.app.routes)
                if route.original_route.matches({**request.scope, "method": "GET"})[0] != Match.NONE]
    literal = [route for route in matching if "{" not in (route.path or "")]
    return sorted({method for route in literal or matching for method in (route.methods or {"GET"})})


def logged_path(request: Request) -> str:
    """The path as the logs name it: its route's template (`/api/suppressions/{email}`), since a path's values may be
    an address or an unsubscribe token; a path no route serves, with each segment that holds an address masked."""
    template = getattr(request.scope.get("route"), "path_format", None)
    if template:
        return template
    return "/".join(REDACTED if "@" in _decoded(segment) else segment for segment in request.url.path.split("/"))


def _decoded(segment: str) -> str:
    """A segment as a client may have encoded it, once or more (`%2540` is `@` twice encoded)."""
    for _ in range(3):
        segment, before = unquote(segment), segment
        if segment == before:
            break
    return segment


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    known = translate(exc)
    if known is not None:
        logger.warning("dependency unavailable", extra={"path": logged_path(request), "error": type(exc).__name__})
        return _envelope(known.status_code, known.code, known.message, headers=_headers_for(known.status_code))
    logger.exception("unhandled error", extra={"path": logged_path(request)})
    return _envelope(500, "internal_error", "Something went wrong on our side")


async def _body_length(request: Request) -> int:
    """The declared length; without one (a chunked body), the length of the body itself, which API Gateway has
    already capped at 10 MB."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit():
        return int(declared)
    return len(await request.body()) if request.method not in ("GET", "HEAD", "OPTIONS") else 0


def request_time_budget(context: Any) -> float | None:
    """Seconds left for the request's database work: the function's remaining time less a margin to answer."""
    if context is None:
        return None
    return time_budget(context.get_remaining_time_in_millis() / 1000, get_settings().request_deadline_margin_ms / 1000)


def create_app(*routers: APIRouter, documents: Sequence[APIRouter] = ()) -> FastAPI:
    """An app serving routers; one given `documents` also serves /docs and /openapi.json over its own routes and
    those routers' (which other functions serve). An app without them serves no docs: API Gateway would never
    route /docs to it."""
    app = FastAPI(title="Mini CRM", version="1.0.0", description=openapi.DESCRIPTION, redoc_url=None, docs_url=None,
                  openapi_url=openapi.OPENAPI_URL if documents else None, swagger_ui_oauth2_redirect_url=None,
                  dependencies=[Depends(known_query_parameters)])
    for router in routers:
        app.include_router(router)
    app.add_exception_handler(CRMError, _crm_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)

    @app.middleware("http")
    async def log_request(request: Request, call_next):
        started = time.perf_counter()
        event = request.scope.get("aws.event") or {}
        request_id = (event.get("requestContext") or {}).get("requestId")
        if request_id:
            logger.set_correlation_id(request_id)
        if await _body_length(request) > MAX_BODY_BYTES:
            response = _envelope(413, "payload_too_large", f"Request bodies are limited to {MAX_BODY_BYTES} bytes")
        else:
            # Every database operation of the request shares one deadline, short of the function's own timeout,
            # so a slow query is a 503 the client can act on rather than a function killed mid-reply.
            with pymongo.timeout(request_time_budget(request.scope.get("aws.context"))):
                response = await call_next(request)
        logger.info("request", extra={"method": request.method, "path": logged_path(request),
                                      "status": response.status_code,
                                      "ms": round((time.perf_counter() - started) * 1000, 1)})
        return response

    if documents:
        openapi.install(app, list(documents))
    return app
