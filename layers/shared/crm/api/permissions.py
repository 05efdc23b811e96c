"""The README's permission table, made from the policies the routers declare: `python -m crm.api.permissions`."""
from __future__ import annotations

from crm.api.access import policies, who_may
from crm.api.routes import documented

HEADER = "| Method | Path | Who may call (roles; API key scopes) |\n|---|---|---|"


def table() -> str:
    rows = [f"| {method} | `{route.path_format}` | {who_may(route, method, policy)} |"
            for router in documented() for route, method, policy in policies(router.routes)]
    return "\n".join([HEADER, *rows])


if __name__ == "__main__":
    print(table())
