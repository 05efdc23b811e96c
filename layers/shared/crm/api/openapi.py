"""Request bodies that FastAPI cannot describe itself (one object or a batch) and the merged document."""
from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

REF = "#/components/schemas/{model}"
_body_models: set[type[BaseModel]] = set()


def body_of(*models: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a route whose JSON body is any one of models."""
    _body_models.update(models)
    refs = [{"$ref": REF.format(model=m.__name__)} for m in models]
    schema = refs[0] if len(refs) == 1 else {"anyOf": refs}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, description=app.description,
                                   routes=app.routes)
            if _body_models:
                models = sorted(_body_models, key=lambda m: m.__name__)
                _, defs = models_json_schema([(m, "validation") for m in models], ref_template=REF)
                document.setdefault("components", {}).setdefault("schemas", {}).update(defs.get("$defs", {}))
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
