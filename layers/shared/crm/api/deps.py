"""Dependencies declared once as Annotated aliases and reused in every route signature."""
from __future__ import annotations

from typing import Annotated, Callable

from fastapi import Depends, Header, Query, Request, params
from fastapi.dependencies.utils import get_flat_params
from starlette.convertors import Convertor, register_url_convertor

from crm.config import Settings, get_settings
from crm.errors import InvalidInput
from crm.models.common import OBJECT_ID_HEX
from crm.pagination import DEFAULT_LIMIT, MAX_LIMIT

SettingsDep = Annotated[Settings, Depends(get_settings)]


class _ObjectIdConvertor(Convertor[str]):
    regex = OBJECT_ID_HEX

    def convert(self, value: str) -> str:
        return value.lower()

    def to_string(self, value: str) -> str:
        return value


# `{segment_id:objectid}` in a path: only an id matches, so /api/segments/preview is never an id.
register_url_convertor("objectid", _ObjectIdConvertor())


def takes_other_query_parameters(endpoint: Callable) -> Callable:
    """Marks a route whose caller adds query parameters of its own choosing, such as an identity provider's
    redirect (scope, authuser, prompt, iss, ...)."""
    endpoint.takes_other_query_parameters = True  # type: ignore[attr-defined]
    return endpoint


def known_query_parameters(request: Request) -> None:
    """A query parameter the route does not take is a 422 naming it, not a filter silently ignored."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or getattr(getattr(route, "endpoint", None), "takes_other_query_parameters", False):
        return
    known = {field.alias for field in get_flat_params(dependant) if isinstance(field.field_info, params.Query)}
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise InvalidInput(f"Unknown query parameter: {', '.join(unknown)[:200]}",
                           [{"loc": ["query", name[:100]], "msg": "not a parameter of this route"}
                            for name in unknown[:20]])

# 1 to 255 printable ASCII characters (crm.services.idempotency takes printable ones; the Idempotency-Key draft,
# ASCII), with no space at either end, which HTTP strips on the way. Not imported from there: no pymongo here.
MAX_IDEMPOTENCY_KEY_LENGTH = 255
IDEMPOTENCY_KEY_PATTERN = f"^[!-~](?:[ -~]{{0,{MAX_IDEMPOTENCY_KEY_LENGTH - 2}}}[!-~])?$"
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1,
                                              max_length=MAX_IDEMPOTENCY_KEY_LENGTH, pattern=IDEMPOTENCY_KEY_PATTERN)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Query(max_length=64)]

__all__ = ["SettingsDep", "IdempotencyKey", "Limit", "Cursor", "DEFAULT_LIMIT"]
