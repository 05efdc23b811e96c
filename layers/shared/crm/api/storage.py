"""The database dependency, apart from deps.py so that functions without MongoDB never import pymongo."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from pymongo.database import Database

from crm.db import get_db


def database() -> Database:
    return get_db()


DbDep = Annotated[Database, Depends(database)]
