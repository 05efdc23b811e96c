"""The one OpenAPI document: every group's routes, the bodies FastAPI cannot describe itself (one object or a
batch), and how the vendor authenticates."""
from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from crm.access.policy import is_read
from crm.access.principals import Role, Scope
from crm.api.access import BEARER_API_KEY, BEARER_JWT, policies, who_may
from crm.api.pages import html_page

REF = "#/components/schemas/{model}"
OPENAPI_URL = "/openapi.json"
DOCS_URL = "/docs"
# Swagger UI's own files, served by this function rather than fetched from a CDN by every browser.
DOCS_ASSETS_URL = "/docs/assets"
DOCS_ASSETS = resources.files("fastapi_offline") / "static"
_body_models: set[type[BaseModel]] = set()

DESCRIPTION = (
    "Customers, orders, segments, campaigns and delivery for a consumer brand. Every `/api` route takes "
    "`Authorization: Bearer <credential>` except sign-in (`/api/auth/*`) and the vendor's two: `/api/mock-send` takes "
    "`X-Vendor-Key`, and `/api/delivery-receipt` takes the vendor's signature. The credential is a person's JWT "
    "(from `/api/auth/*`; their role decides what they may do) or a system's API key (`crm_...`; its scopes decide). "
    "Each operation's `security` names the roles (`bearerAuth`) and the key scopes (`apiKeyAuth`) it accepts; "
    "anything else is `403 forbidden`. Errors are `{\"error\": {\"code\", \"message\", \"details\"}}`.")
VENDOR_KEY = "vendorKey"
VENDOR_SIGNATURE = "vendorSignature"
SECURITY_SCHEMES = {
    BEARER_API_KEY: {"type": "http", "scheme": "bearer", "bearerFormat": "crm_<43 characters>",
                     "description": "A system's API key, created by an admin at /api/api-keys; its scopes decide which "
                                    "customer and order routes it reaches."},
    VENDOR_KEY: {"type": "apiKey", "in": "header", "name": "X-Vendor-Key",
                 "description": "The key the CRM calls its messaging vendor with."},
    VENDOR_SIGNATURE: {"type": "apiKey", "in": "header", "name": "X-Vendor-Signature",
                       "description": "Hex HMAC-SHA256 (64 hex digits) of `<X-Vendor-Timestamp>.<raw body>` with the "
                                      "shared webhook secret; `X-Vendor-Timestamp` is Unix seconds in ASCII digits, "
                                      "accepted within 5 minutes."},
}


class ErrorDetail(BaseModel):
    loc: list[str | int]
    msg: str


class ErrorInfo(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail]


class ErrorEnvelope(BaseModel):
    """The body of every 4xx and 5xx answer."""
    error: ErrorInfo


ERROR_RESPONSES = {
    "422": "Invalid input: one detail per bad field, its `loc` naming it",
    "4XX": "Refused: bad input, missing or bad credentials, an unknown id, a body over the size limit",
    "503": "A dependency (MongoDB, SQS, the vendor) is unreachable; try again later",
}


def secured_by(scheme: str) -> dict[str, Any]:
    """`openapi_extra` for a route authenticated by one of SECURITY_SCHEMES."""
    return {"security": [{scheme: []}]}


def body_of(*models: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a route whose JSON body is any one of models."""
    _body_models.update(models)
    refs = [{"$ref": REF.format(model=m.__name__)} for m in models]
    schema = refs[0] if len(refs) == 1 else {"anyOf": refs}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def install(app: FastAPI, documented: list[APIRouter]) -> None:
    """/openapi.json describes the app's own routes and the documented routers' (served by other functions)."""
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            routes = [*app.routes, *(route for router in documented for route in router.routes)]
            document = get_openapi(title=app.title, version=app.version, description=app.description, routes=routes)
            components = document.setdefault("components", {})
            models = sorted(_body_models | {ErrorEnvelope}, key=lambda m: m.__name__)
            _, defs = models_json_schema([(m, "validation") for m in models], ref_template=REF)
            schemas = components.setdefault("schemas", {})
            schemas.update(defs.get("$defs", {}))
            components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
            _document_errors(document)
            _document_access(document, routes)
            # The error envelope replaces FastAPI's own 422 body.
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=str(DOCS_ASSETS)), name="docs-assets")

    @app.get(DOCS_URL, include_in_schema=False)
    def docs() -> HTMLResponse:
        swagger_ui = get_swagger_ui_html(openapi_url=OPENAPI_URL, title=f"{app.title} API",
                                   swagger_js_url=f"{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{DOCS_ASSETS_URL}/swagger-ui.css",
                                   swagger_favicon_url=f"{DOCS_ASSETS_URL}/favicon.png",
                                   swagger_ui_parameters={"persistAuthorization": True})
        return html_page(bytes(swagger_ui.body).decode())


def _document_access(document: dict[str, Any], routes: list[Any]) -> None:
    """Each guarded operation names the roles and key scopes its router's policy accepts."""
    for route, method, policy in policies(routes):
        operation = document["paths"][route.path_format][method.lower()]
        reads = is_read(method, route.endpoint)
        roles, scopes = policy.roles_for(reads), policy.scopes_for(reads)
        security = [{BEARER_JWT: [role.value for role in sorted(roles, key=list(Role).index)]}]
        if scopes:
            security.append({BEARER_API_KEY: [scope.value for scope in sorted(scopes, key=list(Scope).index)]})
        operation["security"] = security
        said = operation.get("description", "")
        operation["description"] = f"**Who may call:** {who_may(route, method, policy)}." + (
            f"\n\n{said}" if said else "")


# API Gateway's own answer to a call past its route's throttle (template.yaml), before any function runs: its body,
# not the error envelope.
THROTTLED = {"description": "Throttled: the route's rate or burst (deploy parameters) is spent; try again shortly",
             "content": {"application/json": {"schema": {
                 "type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}}}}


def _document_errors(document: dict[str, Any]) -> None:
    envelope = {"application/json": {"schema": {"$ref": REF.format(model=ErrorEnvelope.__name__)}}}
    for path_item in document["paths"].values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            for status, description in ERROR_RESPONSES.items():
                responses[status] = {"description": description, "content": envelope}
            responses["429"] = THROTTLED
