"""The database dependency, apart from deps.py so that functions without MongoDB never import pymongo."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from pymongo.database import Database

from crm.db import ensure_reachable, get_db


def database() -> Database:
    db = get_db()
    ensure_reachable(db)
    return db


DbDep = Annotated[Database, Depends(database)]
